//! Every claim of the seed (shared/seed/SUMMARY.md), reproduced.

use convt::autodiff::Tape;
use convt::bench::Xorshift;
use convt::identities::{
    self, backprop_filter_via_conv2d, backprop_input_via_conv2d, full_padding, pad, rot180,
    swap_in_out,
};
use convt::layout::DataFormat;
use convt::{reference, tf};
use ndarray::{array, s, Array2, Array4};
use proptest::prelude::*;

fn ints(shape: [usize; 4], seed: u64) -> Array4<f64> {
    let mut rng = Xorshift::new(seed);
    Array4::from_shape_fn(shape, |_| (rng.next_u64() % 9) as f64 - 4.0)
}

fn seed_example() -> (Array4<f64>, Array4<f64>) {
    let a = array![[0.0, 0.0, 1.5], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
        .into_shape_with_order((1, 3, 3, 1))
        .unwrap();
    let f = array![[1.0, 2.0], [3.0, 4.0]]
        .into_shape_with_order((2, 2, 1, 1))
        .unwrap();
    (a, f)
}

/// Claim 5: the 6x6 worked example, exactly, and each input value stamps a scaled copy of
/// the filter at twice its position.
#[test]
fn worked_example_exact_and_stamps() {
    let (a, f) = seed_example();
    let opts = tf::Options::new(tf::Padding::Same).strides([1, 2, 2, 1]);
    let y = tf::conv2d_transpose(a.view(), f.view(), &[1, 6, 6, 1], &opts).unwrap();
    let y: Array2<f64> = y.into_shape_with_order((6, 6)).unwrap();
    let expected = array![
        [0.0, 0.0, 0.0, 0.0, 1.5, 3.0],
        [0.0, 0.0, 0.0, 0.0, 4.5, 6.0],
        [0.0, 0.0, 1.0, 2.0, 0.0, 0.0],
        [0.0, 0.0, 3.0, 4.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ];
    assert_eq!(y, expected);
    let filt = f.into_shape_with_order((2, 2)).unwrap();
    for ((i, j), &v) in a
        .clone()
        .into_shape_with_order((3, 3))
        .unwrap()
        .indexed_iter()
    {
        assert_eq!(
            y.slice(s![2 * i..2 * i + 2, 2 * j..2 * j + 2]),
            filt.mapv(|w| w * v)
        );
    }
}

/// Claim 3, literally: one channel, stride 1, VALID: `d_x = conv2d(d_out, rot180(w),
/// FULL)` and `d_w = conv2d(x, d_out, VALID)` with the layouts swapped.
#[test]
fn gradient_view_single_channel_valid() {
    let x = ints([1, 7, 6, 1], 3);
    let w = ints([3, 2, 1, 1], 4);
    let valid = tf::Options::new(tf::Padding::Valid);
    let y = tf::conv2d(x.view(), w.view(), &valid).unwrap();
    let d_out = ints([1, y.shape()[1], y.shape()[2], 1], 5);
    let padded = pad(d_out.view(), full_padding([3, 2], [1, 1])).unwrap();
    let d_x_full = tf::conv2d(padded.view(), rot180(w.view()).view(), &valid).unwrap();
    let d_x = tf::conv2d_backprop_input(&[1, 7, 6, 1], w.view(), d_out.view(), &valid).unwrap();
    assert_eq!(d_x_full, d_x);
    let d_w_conv = tf::conv2d(
        identities::swap_batch_channels(x.view()).view(),
        identities::nhwc_to_hwio(d_out.view()).view(),
        &valid,
    )
    .unwrap();
    let d_w_conv = d_w_conv.permuted_axes([1, 2, 0, 3]).to_owned();
    let d_w = tf::conv2d_backprop_filter(x.view(), &[3, 2, 1, 1], d_out.view(), &valid).unwrap();
    assert_eq!(d_w_conv, d_w);
}

fn padding_strategy() -> impl Strategy<Value = tf::Padding> {
    prop_oneof![
        Just(tf::Padding::Valid),
        Just(tf::Padding::Same),
        (0i64..3, 0i64..3, 0i64..3, 0i64..3).prop_map(|(a, b, c, d)| tf::Padding::Explicit(vec![
            [0, 0],
            [a, b],
            [c, d],
            [0, 0]
        ])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Claim 3 on general geometries: the routes to `d_x` (automatic differentiation;
    /// conv2d of the padded, zero-stuffed gradient with the rotated, swapped filter;
    /// conv2d_backprop_input; conv2d_transpose with output_shape = x.shape; the reference
    /// scatter) agree, and so do the routes to `d_w` (automatic differentiation; conv2d
    /// of x with d_out as the filter; conv2d_backprop_filter; the reference sum), with
    /// strides, dilations, padding, channels and groups.
    #[test]
    fn all_routes_to_dx_and_dw_agree(
        h in 1usize..10, w in 1usize..10, kh in 1usize..4, kw in 1usize..4,
        sh in 1i64..4, sw in 1i64..4, dh in 1i64..3, dw in 1i64..3,
        batch in 1usize..3, groups in 1usize..3, cg in 1usize..3, og in 1usize..3,
        padding in padding_strategy(), seed in any::<u64>(),
    ) {
        let opts = tf::Options::new(padding).strides([sh, sw]).dilations([dh, dw]);
        let x = ints([batch, h, w, cg * groups], seed);
        let filt = ints([kh, kw, cg, og * groups], seed ^ 7);
        let Ok(p) = tf::conv2d_problem(x.shape(), filt.shape(), &opts) else { return Ok(()) };
        let d_out = ints(p.output_shape(), seed ^ 11);
        let x_shape: Vec<i64> = x.shape().iter().map(|&v| v as i64).collect();

        let by_reference = reference::backward_data(&p, d_out.view(), filt.view()).unwrap();
        let by_identity = backprop_input_via_conv2d(&p, d_out.view(), filt.view()).unwrap();
        let by_backprop = tf::conv2d_backprop_input(&x_shape, filt.view(), d_out.view(), &opts).unwrap();
        let by_transpose = tf::conv2d_transpose(d_out.view(), filt.view(), &x_shape, &opts).unwrap();
        prop_assert_eq!(&by_identity, &by_reference);
        prop_assert_eq!(&by_backprop, &by_reference);
        prop_assert_eq!(&by_transpose, &by_reference);
        // The autodiff route: d/dx and d/dw of sum(conv2d(x, w) * d_out).
        let tape = Tape::<f64>::new();
        let (xv, wv, gv) = (tape.leaf(x.clone().into_dyn()), tape.leaf(filt.clone().into_dyn()), tape.leaf(d_out.clone().into_dyn()));
        let loss = tape.sum(tape.mul(tape.conv2d(xv, wv, &p).unwrap(), gv).unwrap());
        let grads = tape.backward(loss).unwrap();
        prop_assert_eq!(grads.get(xv).unwrap(), &by_reference.clone().into_dyn());

        let f_shape: Vec<i64> = filt.shape().iter().map(|&v| v as i64).collect();
        let dw_reference = reference::backward_filter(&p, x.view(), d_out.view()).unwrap();
        let dw_backprop = tf::conv2d_backprop_filter(x.view(), &f_shape, d_out.view(), &opts).unwrap();
        prop_assert_eq!(&dw_backprop, &dw_reference);
        prop_assert_eq!(grads.get(wv).unwrap(), &dw_reference.clone().into_dyn());
        if groups == 1 {
            let dw_identity = backprop_filter_via_conv2d(&p, x.view(), d_out.view()).unwrap();
            prop_assert_eq!(&dw_identity, &dw_reference);
        }
    }
}

/// The same routes in NCHW agree with NHWC.
#[test]
fn nchw_routes_agree_with_nhwc() {
    let x = ints([2, 9, 8, 4], 21);
    let filt = ints([3, 2, 2, 6], 22);
    let nhwc = tf::Options::new(tf::Padding::Same)
        .strides([2, 3])
        .dilations([1, 2]);
    let nchw = nhwc.clone().data_format(DataFormat::Nchw);
    let to_nchw = |a: &Array4<f64>| a.view().permuted_axes([0, 3, 1, 2]).to_owned();
    let y = tf::conv2d(x.view(), filt.view(), &nhwc).unwrap();
    assert_eq!(
        to_nchw(&y),
        tf::conv2d(to_nchw(&x).view(), filt.view(), &nchw).unwrap()
    );
    let dx = tf::conv2d_transpose(y.view(), filt.view(), &[2, 9, 8, 4], &nhwc).unwrap();
    assert_eq!(
        to_nchw(&dx),
        tf::conv2d_transpose(to_nchw(&y).view(), filt.view(), &[2, 4, 9, 8], &nchw).unwrap()
    );
    let dw = tf::conv2d_backprop_filter(x.view(), &[3, 2, 2, 6], y.view(), &nhwc).unwrap();
    assert_eq!(
        dw,
        tf::conv2d_backprop_filter(to_nchw(&x).view(), &[3, 2, 2, 6], to_nchw(&y).view(), &nchw)
            .unwrap()
    );
}

/// Claim 4: an MNIST-sized image through conv2d with a [7,7,1,32] filter, and back with
/// conv2d_transpose (SAME, stride 1), equals conv2d with the in/out-swapped, rotated
/// filter [7,7,32,1], and conv2d_backprop_input.
#[test]
fn transpose_and_flip_mnist() {
    let x = ints([1, 28, 28, 1], 31);
    let w = ints([7, 7, 1, 32], 32);
    let same = tf::Options::new(tf::Padding::Same);
    let y = tf::conv2d(x.view(), w.view(), &same).unwrap();
    assert_eq!(y.shape(), &[1, 28, 28, 32]);
    let back = tf::conv2d_transpose(y.view(), w.view(), &[1, 28, 28, 1], &same).unwrap();
    let flipped = rot180(swap_in_out(w.view()).view());
    assert_eq!(flipped.shape(), &[7, 7, 32, 1]);
    assert_eq!(back, tf::conv2d(y.view(), flipped.view(), &same).unwrap());
    assert_eq!(
        back,
        tf::conv2d_backprop_input(&[1, 28, 28, 1], w.view(), y.view(), &same).unwrap()
    );
}

/// Claim 6: U-Net's up-convolution (kernel 2, stride 2): 3x5 becomes 6x10, and with an
/// all-ones kernel it is exactly nearest-neighbour upsampling.
#[test]
fn unet_upconv_is_nearest_neighbour_with_ones() {
    let x = Array4::from_shape_fn((1, 3, 5, 1), |(_, i, j, _)| (i * 5 + j) as f32);
    let ones = Array4::<f32>::ones((2, 2, 1, 1));
    let opts = tf::Options::new(tf::Padding::Valid).strides(2);
    let y = tf::conv2d_transpose(x.view(), ones.view(), &[1, 6, 10, 1], &opts).unwrap();
    let nearest = Array4::from_shape_fn((1, 6, 10, 1), |(_, i, j, _)| x[[0, i / 2, j / 2, 0]]);
    assert_eq!(y, nearest);
    // Keras Conv2DTranspose(64, (2, 2), strides=(2, 2)) on 128 channels: [1,3,5,128] -> [1,6,10,64].
    let x = Array4::<f32>::ones((1, 3, 5, 128));
    let w = Array4::<f32>::ones((2, 2, 64, 128));
    assert_eq!(
        tf::conv2d_transpose(x.view(), w.view(), &[1, 6, 10, 64], &opts)
            .unwrap()
            .shape(),
        &[1, 6, 10, 64]
    );
}

/// Claim 1 and the matrix view (cs231n): conv2d is a matrix C acting on the flattened
/// input; conv2d_transpose multiplies by C transposed.
#[test]
fn transposed_convolution_is_the_transposed_matrix() {
    let opts = tf::Options::new(tf::Padding::Same).strides(2);
    let w = ints([3, 3, 2, 3], 41);
    let in_shape = [1, 5, 4, 2];
    let n_in: usize = in_shape.iter().product();
    let columns: Vec<Vec<f64>> = (0..n_in)
        .map(|k| {
            let mut e = Array4::<f64>::zeros(in_shape);
            e.as_slice_mut().unwrap()[k] = 1.0;
            tf::conv2d(e.view(), w.view(), &opts)
                .unwrap()
                .iter()
                .copied()
                .collect()
        })
        .collect();
    let n_out = columns[0].len();
    let c = Array2::from_shape_fn((n_out, n_in), |(r, k)| columns[k][r]);
    let dy = ints([1, 3, 2, 3], 42);
    let dx = tf::conv2d_transpose(dy.view(), w.view(), &[1, 5, 4, 2], &opts).unwrap();
    let dy_flat = ndarray::Array1::from_iter(dy.iter().copied());
    assert_eq!(
        ndarray::Array1::from_iter(dx.iter().copied()),
        c.t().dot(&dy_flat)
    );
}

/// Frozen from a proptest failure: the forward window reads only padding (stride 3, pad
/// before 2, one input row), so the equivalent convolution crops more than `dy` has.
#[test]
fn identity_when_every_tap_lands_in_the_padding() {
    let opts = tf::Options::new(tf::Padding::Explicit(vec![[0, 0], [2, 0], [0, 0], [0, 0]]))
        .strides([3, 1]);
    let x = ints([1, 1, 1, 1], 1);
    let filt = ints([1, 1, 1, 1], 2);
    let p = tf::conv2d_problem(x.shape(), filt.shape(), &opts).unwrap();
    let d_out = ints(p.output_shape(), 3);
    let by_identity = backprop_input_via_conv2d(&p, d_out.view(), filt.view()).unwrap();
    assert_eq!(
        by_identity,
        reference::backward_data(&p, d_out.view(), filt.view()).unwrap()
    );
    assert_eq!(by_identity, Array4::<f64>::zeros((1, 1, 1, 1)));
}
