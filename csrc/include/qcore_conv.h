/*
 * qcore int8 2-D convolution and max pooling. Included by qcore.h; docs/KERNELS.md
 * ("Convolution") describes the design, docs/ARITHMETIC.md ("ConvInteger", "QLinearConv")
 * and docs/QUANTIZATION.md the formulas of the output stages.
 *
 * The weights are packed once (qc_conv2d_pack_weights) into one buffer that serves every
 * ISA. On the scalar and AVX2 paths the convolution is direct and runs on the calling
 * thread: the input is centred
 * into int16 chunk by chunk (x - x_zero_point, NHWC, channels of each group padded to even,
 * with a border of zeros for the padding), and a microkernel accumulates int16 pairs (vpmaddwd)
 * over the taps, reading input rows through per-tap pointers, with no im2col matrix. On the NEON paths
 * the input is unfolded by im2col in row chunks and multiplied by the packed GEMM of
 * qcore_gemm.h (its NEON / dotprod kernels and threads). Both compute the exact integer sum, so every
 * ISA and thread count gives identical results.
 */
#ifndef QCORE_CONV_H
#define QCORE_CONV_H

/* cdef: begin */
/* Memory order of 4-D activations. */
typedef enum qc_conv_layout {
    QC_CONV_NCHW = 0,
    QC_CONV_NHWC = 1
} qc_conv_layout;

/* Geometry of a 2-D convolution or pooling window: input [batch, channels, height, width]
 * (in either layout), kernel / strides / dilations >= 1, explicit pads >= 0. For pooling,
 * groups and out_channels are ignored. */
typedef struct qc_conv2d_shape {
    size_t batch;
    size_t channels;
    size_t height;
    size_t width;
    size_t out_channels;
    size_t groups;
    size_t kernel_height;
    size_t kernel_width;
    size_t stride_height;
    size_t stride_width;
    size_t dilation_height;
    size_t dilation_width;
    size_t pad_top;
    size_t pad_left;
    size_t pad_bottom;
    size_t pad_right;
} qc_conv2d_shape;

/* What the output stage writes, per accumulator acc[n, oc, oh, ow] (exact, int32
 * wrapping):
 *   QC_CONV_OUT_S32        y = acc                                         int32 (ConvInteger)
 *   QC_CONV_OUT_REQUANT    y = clamp(round_half_even((float)(acc + bias_s32[oc]) * multiplier[oc])
 *                                    + output_zero_point, clamp_min, clamp_max)
 *                          int8 / uint8 (QLinearConv; qc__requant_float of requant.h)
 *   QC_CONV_OUT_F32        y = (float)acc * multiplier[oc] + bias_f32[oc]  float32
 *   QC_CONV_OUT_F32_QUANTIZE
 *                          f = (float)acc * multiplier[oc] + bias_f32[oc]
 *                          y = clamp(saturate(round_half_even(f / output_scale) + output_zero_point),
 *                                    clamp_min, clamp_max)                 int8 / uint8
 *                          (the float output quantized for the next layer, exactly as
 *                          qc_quantize_f32 does it; clamp_min = output_zero_point is a
 *                          fused ReLU)
 * float32 arithmetic without FMA, multiply then add. multiplier has out_channels entries
 * (or 1 with multiplier_per_channel = 0), finite and >= 0; bias pointers may be NULL (0). */
typedef enum qc_conv_output_kind {
    QC_CONV_OUT_S32 = 0,
    QC_CONV_OUT_REQUANT = 1,
    QC_CONV_OUT_F32 = 2,
    QC_CONV_OUT_F32_QUANTIZE = 3
} qc_conv_output_kind;

typedef struct qc_conv_output {
    int kind;                   /* a qc_conv_output_kind */
    int layout;                 /* QC_CONV_NCHW or QC_CONV_NHWC */
    int type;                   /* quantized kinds: QC_DTYPE_INT8 or QC_DTYPE_UINT8 */
    const float *multiplier;    /* REQUANT / F32 / F32_QUANTIZE */
    int multiplier_per_channel; /* 1: out_channels values, 0: one value */
    const int32_t *bias_s32;    /* REQUANT: out_channels values or NULL */
    const float *bias_f32;      /* F32 / F32_QUANTIZE: out_channels values or NULL */
    float output_scale;         /* F32_QUANTIZE: finite and > 0 */
    int32_t output_zero_point;  /* quantized kinds, in the range of type */
    int32_t clamp_min;          /* quantized kinds: type_min <= clamp_min <= clamp_max <= type_max */
    int32_t clamp_max;
    /* Optional max pooling of the quantized output (REQUANT / F32_QUANTIZE only): windows of
     * pool_height x pool_width with the same strides, no padding, floor mode, so y is
     * [batch, out_channels, out_height / pool_height, out_width / pool_width]. 0 or 1 in
     * both: no pooling. The pool takes the max of the output stage's bytes, so the result
     * equals qc_maxpool2d_x8 of the unpooled output. */
    size_t pool_height;
    size_t pool_width;
} qc_conv_output;

/* The activations: int8 / uint8 values with a per-tensor zero point, or float32 values that
 * are first quantized with (scale, zero_point) to quantized_type (ONNX QuantizeLinear,
 * qc_quantize_f32; a NaN gives QC_E_NONFINITE). */
typedef struct qc_conv_input {
    int type;                   /* QC_DTYPE_INT8, QC_DTYPE_UINT8 or QC_DTYPE_FLOAT32 */
    int layout;                 /* QC_CONV_NCHW or QC_CONV_NHWC */
    const void *data;
    int32_t zero_point;         /* in the range of the (quantized) type */
    float scale;                /* float32 input only: finite and > 0 */
    int quantized_type;         /* float32 input only: QC_DTYPE_INT8 or QC_DTYPE_UINT8 */
} qc_conv_input;

/* Output height and width: (size + pads - ((k - 1) * dilation + 1)) / stride + 1.
 * QC_E_SHAPE when the dilated kernel is larger than the padded input or a parameter is 0. */
qc_status qc_conv2d_output_size(const qc_conv2d_shape *shape, size_t *out_height, size_t *out_width);

/* Bytes of packed weights for out_channels x (in_channels / groups) x kernel_height x
 * kernel_width weights (only those fields and groups of shape are read). */
qc_status qc_conv2d_packed_size(const qc_conv2d_shape *shape, size_t *size_out);

/* Packs ONNX-layout weights w [OC, C/groups, KH, KW] (w_type QC_DTYPE_INT8 or
 * QC_DTYPE_UINT8) and their zero points (count 0, 1 or OC, each in w_type's range) into
 * packed, a caller-owned buffer of qc_conv2d_packed_size bytes aligned to 32 bytes. */
qc_status qc_conv2d_pack_weights(const qc_conv2d_shape *shape, int w_type, const void *w,
                                 const int32_t *w_zero_point, size_t w_zero_point_count, void *packed,
                                 size_t packed_size, const qc_options *options);

/* The convolution with weights from qc_conv2d_pack_weights (their shape must equal
 * shape's: QC_E_SHAPE otherwise). y has batch * out_channels * out_height * out_width
 * elements of the output kind's type, in output->layout order. Empty batches are fine
 * (nothing is written). */
qc_status qc_conv2d(const qc_conv2d_shape *shape, const qc_conv_input *input, const void *packed_weights,
                    const qc_conv_output *output, void *y, const qc_options *options);

/* Max pooling of int8 / uint8 values (type QC_DTYPE_INT8 or QC_DTYPE_UINT8), layout NCHW or
 * NHWC for both x and y: y[n, c, oh, ow] = max over the window taps inside the input of
 * x[n, c, oh * sh - pt + kh * dh, ow * sw - pl + kw * dw]; a window with no tap inside gives
 * the type's minimum (the quantized -inf). Because quantization is monotonic, pooling
 * quantized values equals quantizing the pooled floats. Output size as
 * qc_conv2d_output_size (ceil_mode: add the overhang to pad_bottom / pad_right). */
qc_status qc_maxpool2d_x8(const qc_conv2d_shape *shape, int type, int layout, const void *x, void *y,
                          const qc_options *options);
/* cdef: end */

#endif /* QCORE_CONV_H */
