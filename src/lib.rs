//! convt: the 2-D convolution family and its gradients.
pub mod conv;
pub mod element;
pub mod error;
mod kernels;
pub mod problem;
pub mod reference;

pub use element::Element;
pub use error::{ConvError, Result};
pub use problem::{Axis, AxisPadding, Direction, Problem};
