//! The element types convt computes in: `f32` and `f64`.

use ndarray_npy::{ReadableElement, WritableElement};
use num_traits::Float;
use std::fmt::{Debug, Display};

/// A floating-point element type convt computes in (`f32` or `f64`).
pub trait Element:
    Float
    + Default
    + Send
    + Sync
    + Debug
    + Display
    + std::iter::Sum
    + std::ops::AddAssign
    + ReadableElement
    + WritableElement
    + 'static
{
    /// NumPy's name for the type (`float32`, `float64`).
    const DTYPE: &'static str;
}

impl Element for f32 {
    const DTYPE: &'static str = "float32";
}

impl Element for f64 {
    const DTYPE: &'static str = "float64";
}
