//! # convt
//!
//! The 2-D convolution family (`conv2d`, `conv2d_backprop_input`,
//! `conv2d_backprop_filter`, `conv2d_transpose`) exactly as TensorFlow defines it, on
//! one validated [`Problem`] type, with fast CPU kernels and a plain-loop
//! [`reference`](mod@reference).
//!
//! `conv2d_transpose` is not a "deconvolution": it is the gradient of `conv2d` with
//! respect to its input. Each input pixel stamps a scaled copy of the kernel into the
//! output at stride spacing, which makes it *learned upsampling*. The seed's example:
//!
//! ```
//! use convt::tf;
//! use ndarray::array;
//! let a = array![[0.0, 0.0, 1.5], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
//!     .into_shape_with_order((1, 3, 3, 1)).unwrap();
//! let filt = array![[1.0, 2.0], [3.0, 4.0]].into_shape_with_order((2, 2, 1, 1)).unwrap();
//! let opts = tf::Options::new(tf::Padding::Same).strides([1, 2, 2, 1]);
//! let y = tf::conv2d_transpose(a.view(), filt.view(), &[1, 6, 6, 1], &opts).unwrap();
//! let y = y.into_shape_with_order((6, 6)).unwrap();
//! assert_eq!(y, array![
//!     [0.0, 0.0, 0.0, 0.0, 1.5, 3.0],
//!     [0.0, 0.0, 0.0, 0.0, 4.5, 6.0],
//!     [0.0, 0.0, 1.0, 2.0, 0.0, 0.0],
//!     [0.0, 0.0, 3.0, 4.0, 0.0, 0.0],
//!     [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
//!     [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
//! ]);
//! ```
//!
//! Layers of the crate: framework fronts ([`tf`], and [`call`] for calls by name) build a
//! [`Problem`] (all size rules live in [`problem`]); [`conv`] runs one of its three
//! directions on canonical-layout arrays with the fast kernels; [`reference`](mod@reference) holds
//! the definitions as loops; [`identities`] the seed's constructions.

#![warn(missing_docs)]

pub mod autodiff;
pub mod bench;
pub mod call;
pub mod conv;
pub mod element;
pub mod error;
pub mod explain;
pub mod fuzzing;
pub mod identities;
pub(crate) mod kernels;
pub mod layout;
pub mod nn;
pub mod onnx;
pub mod problem;
pub mod reference;
pub mod tf;
pub mod torch;
pub mod translate;
pub mod upsampling;

pub use element::Element;
pub use error::{ConvError, Result};
pub use layout::DataFormat;
/// The array crate of convt's API, re-exported so callers use the same version.
pub use ndarray;
pub use problem::{Axis, AxisPadding, Direction, Problem};
