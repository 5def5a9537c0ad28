//! The one error type of convt.
//!
//! Every refusal names the argument it is about (in the caller's framework's own words,
//! e.g. `output_shape`, `strides`, `weight`) and says what would have been legal.

use thiserror::Error;

/// Every way a convt call can be refused.
///
/// `arg` fields hold the argument's name as the caller's framework spells it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConvError {
    /// An array has the wrong number of dimensions.
    #[error("`{arg}` must be {expected}, got shape {shape:?} (rank {})", shape.len())]
    Rank {
        /// Argument name.
        arg: String,
        /// What was expected, e.g. "4-dimensional [batch, height, width, channels]".
        expected: String,
        /// The shape that was given.
        shape: Vec<usize>,
    },
    /// A list argument has a length the framework does not accept.
    #[error("`{arg}` must have {expected}, got {got:?} (length {})", got.len())]
    Length {
        /// Argument name.
        arg: String,
        /// The accepted lengths, in words.
        expected: String,
        /// The list that was given.
        got: Vec<i64>,
    },
    /// A stride, dilation, group count or kernel size is zero or negative.
    #[error("`{arg}` must be >= 1 on every axis, got {got:?}")]
    NotPositive {
        /// Argument name.
        arg: String,
        /// The values that were given.
        got: Vec<i64>,
    },
    /// A padding or output padding is negative.
    #[error("`{arg}` must be >= 0 on every axis, got {got:?}")]
    Negative {
        /// Argument name.
        arg: String,
        /// The values that were given.
        got: Vec<i64>,
    },
    /// A 4-entry strides/dilations/padding list asks for something on the batch or channel axis.
    #[error(
        "`{arg}` = {got:?}: the batch and channel entries must be {neutral} (legal form: {legal})"
    )]
    BatchOrChannelEntry {
        /// Argument name.
        arg: String,
        /// The list that was given.
        got: Vec<i64>,
        /// The neutral value (1 for strides and dilations, 0 for padding).
        neutral: i64,
        /// The legal form, e.g. `[1, stride_h, stride_w, 1] for NHWC`.
        legal: String,
    },
    /// Channel counts of two arguments do not fit together (or do not divide by groups).
    #[error("`{arg}`: {message}")]
    Channels {
        /// Argument name.
        arg: String,
        /// What does not fit, with the legal values.
        message: String,
    },
    /// Shapes of two arguments disagree (e.g. batch sizes), or a shape entry is out of range.
    #[error("`{arg}`: {message}")]
    Shape {
        /// Argument name.
        arg: String,
        /// What does not fit, with the legal values.
        message: String,
    },
    /// A requested output size (TF `output_shape` / `input_sizes`, ONNX `output_shape`)
    /// is not one the forward convolution could have come from.
    #[error("`{arg}`: {axis} {got} is not legal here; legal {axis}s: {}", list_or_none(.legal))]
    IllegalOutputSize {
        /// Argument name.
        arg: String,
        /// `height` or `width`.
        axis: String,
        /// The requested size.
        got: i64,
        /// Every size that would have been accepted.
        legal: Vec<usize>,
    },
    /// The (dilated) kernel is larger than the padded input.
    #[error("kernel larger than the padded input on the {axis} axis: padded input {padded_input} < effective kernel {effective_kernel} (= (kernel-1)*dilation+1); legal: padded input >= effective kernel, e.g. SAME padding")]
    KernelTooLarge {
        /// `height` or `width`.
        axis: String,
        /// Input size plus padding.
        padded_input: i64,
        /// `(k - 1) * d + 1`.
        effective_kernel: i64,
    },
    /// A transposed convolution's output would be empty or negative.
    #[error("output {axis} would be {size}, too small (must be >= 1); {formula}")]
    OutputTooSmall {
        /// `height` or `width`.
        axis: String,
        /// The computed size.
        size: i64,
        /// The formula with the caller's numbers.
        formula: String,
    },
    /// An `output_padding` is too large.
    #[error("`{arg}` = {got:?} is too large: legal values on each axis are 0 <= output_padding < {bound}")]
    OutputPadding {
        /// Argument name.
        arg: String,
        /// The values that were given.
        got: Vec<i64>,
        /// The bound, in words with the caller's numbers.
        bound: String,
    },
    /// A named value (padding mode, data format, op name, ...) is not one of the legal names.
    #[error("`{arg}` = {got:?} is not recognised; legal values: {legal}")]
    UnknownValue {
        /// Argument name.
        arg: String,
        /// What was given.
        got: String,
        /// The legal values.
        legal: String,
    },
    /// A required argument is missing, or an argument is not one of the op's.
    #[error("`{arg}`: {message}")]
    Argument {
        /// Argument name.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// The element types of the arrays are unsupported or differ.
    #[error("`{arg}` has dtype {got}; legal: {legal}")]
    DType {
        /// Argument name.
        arg: String,
        /// The dtype that was given.
        got: String,
        /// The legal dtypes.
        legal: String,
    },
    /// A size computation overflows or the memory needed cannot be allocated.
    #[error("`{arg}`: {message}")]
    TooLarge {
        /// Argument name (or what is being allocated).
        arg: String,
        /// What would overflow or how much memory was requested.
        message: String,
    },
    /// A file could not be read or written, or is not a valid `.npy` file.
    #[error("{file}: {message}")]
    File {
        /// The file's path.
        file: String,
        /// What is wrong with it.
        message: String,
    },
}

fn list_or_none(legal: &[usize]) -> String {
    if legal.is_empty() {
        "none (no forward convolution with these parameters produces this input size)".into()
    } else {
        format!("{legal:?}")
    }
}

/// convt's result type.
pub type Result<T> = std::result::Result<T, ConvError>;
