//! `convt demo`: the seed's claims about `conv2d_transpose`, each computed and checked.

use convt::bench::Xorshift;
use convt::identities::{self, full_padding, pad, rot180, swap_in_out, zero_stuff};
use convt::problem::{legal_transposed_sizes, AxisPadding, Taps};
use convt::{reference, tf, Result};
use ndarray::{array, s, Array2, Array4, ArrayView2};

fn grid(a: ArrayView2<f64>) -> String {
    let cells: Vec<Vec<String>> = a
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|v| format!("{v}")).collect())
        .collect();
    let width = cells.iter().flatten().map(String::len).max().unwrap_or(1);
    cells
        .iter()
        .map(|r| {
            let row: Vec<String> = r.iter().map(|c| format!("{c:>width$}")).collect();
            format!("    {}\n", row.join(" "))
        })
        .collect()
}

fn plane(a: &Array4<f64>) -> Array2<f64> {
    a.slice(s![0, .., .., 0]).to_owned()
}

/// The single 2-D kernel of a `[kh, kw, 1, 1]` filter.
fn kernel(w: &Array4<f64>) -> Array2<f64> {
    w.slice(s![.., .., 0, 0]).to_owned()
}

fn max_diff(a: &Array4<f64>, b: &Array4<f64>) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn verdict(what: &str, diff: f64) {
    let mark = if diff <= 1e-9 { "agree" } else { "DIFFER" };
    say!("    {what:<62} {mark} (max |difference| = {diff:.1e})");
}

/// Small integers from a seed, so that sums are exact.
fn ints(shape: [usize; 4], seed: u64) -> Array4<f64> {
    let mut rng = Xorshift::new(seed);
    Array4::from_shape_fn(shape, |_| (rng.next_u64() % 9) as f64 - 4.0)
}

/// Runs the walk-through.
pub fn run() -> Result<()> {
    say!("conv2d_transpose, explained with real computations (the seed's claims, one by one)\n");

    // 5. The worked example.
    let a = array![[0.0, 0.0, 1.5], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
        .into_shape_with_order((1, 3, 3, 1))
        .unwrap();
    let filt = array![[1.0, 2.0], [3.0, 4.0]]
        .into_shape_with_order((2, 2, 1, 1))
        .unwrap();
    let opts = tf::Options::new(tf::Padding::Same).strides([1, 2, 2, 1]);
    let y = tf::conv2d_transpose(a.view(), filt.view(), &[1, 6, 6, 1], &opts)?;
    say!("1. The worked example");
    say!("  a = \n{}", grid(plane(&a).view()));
    say!("  filt = \n{}", grid(kernel(&filt).view()));
    say!("  tf.nn.conv2d_transpose(a, filt, output_shape=[1,6,6,1], strides=[1,2,2,1], padding='SAME') =");
    say!("{}", grid(plane(&y).view()));
    say!("\n  Scatter view: each input value stamps a scaled copy of the filter at twice its position:");
    let p = tf::conv2d_transpose_problem(a.shape(), filt.shape(), &[1, 6, 6, 1], &opts)?;
    for ((i, j), &v) in plane(&a).indexed_iter() {
        if v != 0.0 {
            let r0 = (i * 2) as i64 - p.height.pad_before as i64;
            let c0 = (j * 2) as i64 - p.width.pad_before as i64;
            let stamp = kernel(&filt).mapv(|w| w * v);
            let flat: Vec<String> = stamp
                .rows()
                .into_iter()
                .map(|r| {
                    r.iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            say!("    a[{i},{j}] = {v}: {v} x filt = [{}] lands on output rows {r0}..{}, columns {c0}..{}", flat.join("; "), r0 + 2, c0 + 2);
        }
    }
    let legal = legal_transposed_sizes(3, Taps::new(2, 2, 1), AxisPadding::SameUpper)?;
    say!(
        "\n  Why output_shape is needed: with stride 2 several sizes map back to 3 under conv2d SAME;\n  legal output heights and widths here: {:?}. SAME padding of the forward conv for 6: before {}, after {}.",
        legal.map(|r| r.collect::<Vec<_>>()).unwrap_or_default(),
        p.height.pad_before,
        p.height.pad_after
    );

    // 1. Fractional stride: zero-stuff, pad, convolve with the rotated filter.
    say!(
        "\n2. Fractional stride: the same result as a stride-1 conv2d over the zero-stuffed input"
    );
    let stuffed = zero_stuff(a.view(), [2, 2]);
    let pads = identities::equivalent_conv_padding(&p);
    let padded = pad(stuffed.view(), pads)?;
    say!("  a with 1 zero between neighbours, padded {pads:?} (negative = crop):");
    say!("{}", grid(plane(&padded).view()));
    let flipped = rot180(filt.view());
    say!("  rot180(filt) =\n{}", grid(kernel(&flipped).view()));
    let direct = tf::conv2d(
        padded.view(),
        flipped.view(),
        &tf::Options::new(tf::Padding::Valid),
    )?;
    verdict(
        "conv2d(stuffed, rot180(filt), stride 1) vs conv2d_transpose",
        max_diff(&direct, &y),
    );

    // 3. The gradient view, on a general geometry.
    say!("\n3. conv2d_transpose is conv2d's input gradient; all four TF ops are conv2d");
    let x = ints([2, 9, 8, 6], 1);
    let w = ints([3, 3, 3, 4], 2);
    let opts = tf::Options::new(tf::Padding::Same)
        .strides([2, 2])
        .dilations([1, 1]);
    let p = tf::conv2d_problem(x.shape(), w.shape(), &opts)?;
    let d_out = ints(p.output_shape(), 3);
    say!(
        "  x [2,9,8,6], w [3,3,3,4] (2 groups), stride 2, SAME -> out {:?}; d_out random integers",
        p.output_shape()
    );
    let scatter = reference::backward_data(&p, d_out.view(), w.view())?;
    let via_conv = identities::backprop_input_via_conv2d(&p, d_out.view(), w.view())?;
    let via_backprop = tf::conv2d_backprop_input(&[2, 9, 8, 6], w.view(), d_out.view(), &opts)?;
    let via_transpose = tf::conv2d_transpose(d_out.view(), w.view(), &[2, 9, 8, 6], &opts)?;
    say!("  d_x four ways:");
    verdict(
        "conv2d(pad(zero_stuff(d_out)), rot180(swap_in_out(w))) vs scatter",
        max_diff(&via_conv, &scatter),
    );
    verdict(
        "conv2d_backprop_input(x.shape, w, d_out) vs scatter",
        max_diff(&via_backprop, &scatter),
    );
    verdict(
        "conv2d_transpose(d_out, w, output_shape=x.shape) vs scatter",
        max_diff(&via_transpose, &scatter),
    );
    let x1 = ints([1, 9, 8, 3], 4);
    let w1 = ints([3, 3, 3, 4], 5);
    let p1 = tf::conv2d_problem(x1.shape(), w1.shape(), &opts)?;
    let d_out1 = ints(p1.output_shape(), 6);
    let dw_sum = reference::backward_filter(&p1, x1.view(), d_out1.view())?;
    let dw_conv = identities::backprop_filter_via_conv2d(&p1, x1.view(), d_out1.view())?;
    let dw_backprop = tf::conv2d_backprop_filter(x1.view(), &[3, 3, 3, 4], d_out1.view(), &opts)?;
    say!("  d_w three ways (x [1,9,8,3], one group):");
    verdict(
        "conv2d(x as [C,H,W,N], d_out as filter, stride<->dilation) vs sum",
        max_diff(&dw_conv, &dw_sum),
    );
    verdict(
        "conv2d_backprop_filter(x, w.shape, d_out) vs sum",
        max_diff(&dw_backprop, &dw_sum),
    );
    let single = ints([1, 6, 6, 1], 7);
    let k = ints([3, 3, 1, 1], 8);
    let valid = tf::Options::new(tf::Padding::Valid);
    let out = tf::conv2d(single.view(), k.view(), &valid)?;
    let g = ints([1, out.shape()[1], out.shape()[2], 1], 9);
    let full = pad(g.view(), full_padding([3, 3], [1, 1]))?;
    let dx_full = tf::conv2d(full.view(), rot180(k.view()).view(), &valid)?;
    let dx = tf::conv2d_backprop_input(&[1, 6, 6, 1], k.view(), g.view(), &valid)?;
    verdict(
        "1 channel, VALID: conv2d(d_out, rot180(w), padding=FULL) vs d_x",
        max_diff(&dx_full, &dx),
    );

    // 4. Transpose and flip.
    say!("\n4. Transpose and flip: MNIST-sized x [1,28,28,1], w [7,7,1,32]");
    let x = ints([1, 28, 28, 1], 10);
    let w = ints([7, 7, 1, 32], 11);
    let same = tf::Options::new(tf::Padding::Same);
    let y = tf::conv2d(x.view(), w.view(), &same)?;
    let back = tf::conv2d_transpose(y.view(), w.view(), &[1, 28, 28, 1], &same)?;
    let w_flip = rot180(swap_in_out(w.view()).view());
    say!(
        "  conv2d -> {:?}; w' = rot180(swap_in_out(w)) has shape {:?}",
        y.shape(),
        w_flip.shape()
    );
    verdict(
        "conv2d_transpose(y, w) vs conv2d(y, w')",
        max_diff(&back, &tf::conv2d(y.view(), w_flip.view(), &same)?),
    );
    verdict(
        "conv2d_transpose(y, w) vs conv2d_backprop_input([1,28,28,1], w, y)",
        max_diff(
            &back,
            &tf::conv2d_backprop_input(&[1, 28, 28, 1], w.view(), y.view(), &same)?,
        ),
    );

    // 6. U-Net.
    say!("\n5. Learned upsampling: U-Net's up-convolution (kernel 2, stride 2) with an all-ones kernel");
    let x = Array4::from_shape_fn((1, 3, 5, 1), |(_, i, j, _)| (i * 5 + j) as f64);
    let ones = Array4::<f64>::ones((2, 2, 1, 1));
    let up = tf::conv2d_transpose(
        x.view(),
        ones.view(),
        &[1, 6, 10, 1],
        &tf::Options::new(tf::Padding::Valid).strides(2),
    )?;
    say!(
        "  3x5 input:\n{}  becomes 6x10, each value a 2x2 block (nearest-neighbour upsampling):",
        grid(plane(&x).view())
    );
    say!("{}", grid(plane(&up).view()));
    say!("  With learned weights instead of ones, the same op is a trainable upsampler.");

    // The matrix view.
    say!("\n6. The matrix view (cs231n): conv2d is a matrix C on the flattened input; the transpose uses C^T");
    let w = array![[1.0, 2.0], [3.0, 4.0]]
        .into_shape_with_order((2, 2, 1, 1))
        .unwrap();
    let n_in = 9;
    let mut c = Array2::<f64>::zeros((4, n_in));
    for k in 0..n_in {
        let mut e = Array4::<f64>::zeros((1, 3, 3, 1));
        e.as_slice_mut().unwrap()[k] = 1.0;
        let col = tf::conv2d(e.view(), w.view(), &valid)?;
        for (r, v) in col.iter().enumerate() {
            c[[r, k]] = *v;
        }
    }
    say!(
        "  conv2d(3x3 input, 2x2 kernel [[1,2],[3,4]], VALID) as a 4x9 matrix C:\n{}",
        grid(c.view())
    );
    let dy = array![[1.0, -1.0], [2.0, 0.5]]
        .into_shape_with_order((1, 2, 2, 1))
        .unwrap();
    let t = tf::conv2d_transpose(dy.view(), w.view(), &[1, 3, 3, 1], &valid)?;
    let ct = c.t().dot(&ndarray::Array1::from_iter(dy.iter().copied()));
    let t_flat = Array4::from_shape_vec((1, 3, 3, 1), ct.to_vec()).unwrap();
    verdict(
        "conv2d_transpose(dy) vs C^T . flatten(dy)",
        max_diff(&t, &t_flat),
    );
    // 7. The whole explanation of the seed's call.
    say!("\n7. `convt explain` of the seed's call: size arithmetic, equivalent conv2d, other frameworks, matrix and scatter views");
    let mut args = convt::call::Args::new();
    let a = array![[0.0, 0.0, 1.5], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
        .into_shape_with_order((1, 3, 3, 1))
        .unwrap();
    let filt = array![[1.0, 2.0], [3.0, 4.0]]
        .into_shape_with_order((2, 2, 1, 1))
        .unwrap();
    args.insert(
        "input",
        convt::call::Arg::Tensor(convt::call::Tensor::F64(a.into_dyn())),
    );
    args.insert(
        "filters",
        convt::call::Arg::Tensor(convt::call::Tensor::F64(filt.into_dyn())),
    );
    for (name, v) in [
        ("output_shape", serde_json::json!([1, 6, 6, 1])),
        ("strides", serde_json::json!([1, 2, 2, 1])),
        ("padding", serde_json::json!("SAME")),
    ] {
        args.insert(name, convt::call::Arg::Json(v));
    }
    let e = convt::explain::explain("tf.nn.conv2d_transpose", &args)?;
    for line in e.text().lines() {
        say!("  {line}");
    }
    say!("\nPictures: convt explain tf.nn.conv2d_transpose input=a.npy filters=f.npy output_shape=[1,6,6,1] strides=2 padding=SAME --svg seed.svg --html seed.html");
    say!("\nEvery line above was computed by convt now; `cargo test --release` checks the same claims.");
    Ok(())
}
