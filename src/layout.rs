//! Data layouts and the permutations between them (all pure axis permutations: moving
//! weights between frameworks never flips a kernel).

use crate::error::{ConvError, Result};
use ndarray::{Array4, ArrayView4};

/// Where the channel axis of a 4-D data tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataFormat {
    /// `[batch, height, width, channels]` (TensorFlow's default; convt's canonical layout).
    #[default]
    Nhwc,
    /// `[batch, channels, height, width]` (PyTorch, ONNX).
    Nchw,
}

impl DataFormat {
    /// Parses TensorFlow's `data_format` (`"NHWC"` or `"NCHW"`, case-sensitive).
    pub fn parse(arg: &str, text: &str) -> Result<DataFormat> {
        match text {
            "NHWC" => Ok(DataFormat::Nhwc),
            "NCHW" => Ok(DataFormat::Nchw),
            _ => Err(ConvError::UnknownValue {
                arg: arg.into(),
                got: text.into(),
                legal: "\"NHWC\", \"NCHW\"".into(),
            }),
        }
    }

    /// Indices of (batch, height, width, channels) in this layout.
    pub fn axes(self) -> [usize; 4] {
        match self {
            DataFormat::Nhwc => [0, 1, 2, 3],
            DataFormat::Nchw => [0, 2, 3, 1],
        }
    }

    /// A shape in this layout, reordered to `[batch, height, width, channels]`.
    pub fn to_nhwc_shape<D: Copy>(self, shape: &[D]) -> [D; 4] {
        self.axes().map(|a| shape[a])
    }

    /// A view of `data` (in this layout) as NHWC, without copying.
    pub fn view_as_nhwc<T>(self, data: ArrayView4<'_, T>) -> ArrayView4<'_, T> {
        match self {
            DataFormat::Nhwc => data,
            DataFormat::Nchw => data.permuted_axes([0, 2, 3, 1]),
        }
    }

    /// An NHWC array converted to this layout (standard memory order).
    pub fn from_nhwc<T: Clone>(self, data: Array4<T>) -> Array4<T> {
        match self {
            DataFormat::Nhwc => data,
            DataFormat::Nchw => data
                .permuted_axes([0, 3, 1, 2])
                .as_standard_layout()
                .into_owned(),
        }
    }

    /// The layout's name as TensorFlow writes it.
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Nhwc => "NHWC",
            DataFormat::Nchw => "NCHW",
        }
    }
}
