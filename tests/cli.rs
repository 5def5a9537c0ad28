//! The `convt` binary's subcommands, run as a user would.

use std::process::Command;

fn convt(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_convt"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn demo_reproduces_the_seed_and_every_check_agrees() {
    let (code, out, _) = convt(&["demo"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("0   0   0   0 1.5   3") && out.contains("0   0   0   0 4.5   6"),
        "{out}"
    );
    assert!(out.contains("1.5 x filt = [1.5 3; 4.5 6]"), "{out}");
    assert!(out.matches("agree").count() >= 9, "{out}");
    assert!(!out.contains("DIFFER"), "{out}");
}

#[test]
fn translate_prints_every_framework_and_the_workaround() {
    let (code, out, _) = convt(&[
        "translate",
        "tf.nn.conv2d_transpose",
        "input_shape=[1,4,4,8]",
        "filters_shape=[5,5,3,8]",
        "output_shape=[1,8,8,3]",
        "strides=2",
        "padding=SAME",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("TensorFlow (exact)")
            && out.contains("ONNX (exact)")
            && out.contains("PyTorch (not a single call)"),
        "{out}"
    );
    assert!(
        out.contains("pads=[1,1,2,2]")
            && out.contains("torch.nn.functional.pad(y, (-1, -2, -1, -2))"),
        "{out}"
    );
}

#[test]
fn refused_calls_exit_2_with_an_error_line() {
    let (code, out, err) = convt(&[
        "translate",
        "tf.nn.conv2d_transpose",
        "input_shape=[1,3,3,1]",
        "filters_shape=[2,2,1,1]",
        "output_shape=[1,7,6,1]",
        "strides=2",
        "padding=SAME",
    ]);
    assert_eq!(code, 2);
    assert!(
        out.is_empty()
            && err.starts_with("error: `output_shape`: height 7")
            && err.contains("[5, 6]"),
        "{err}"
    );
    let (code, _, err) = convt(&[
        "run",
        "tf.nn.conv2d",
        "input=missing.npy",
        "--out",
        "/tmp/never.npy",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.npy"), "{err}");
    let (code, _, err) = convt(&["run", "tf.nn.conv2d", "strides", "--out", "/tmp/never.npy"]);
    assert_eq!(code, 2);
    assert!(err.contains("NAME=VALUE"), "{err}");
}

#[test]
fn bench_json_line_for_a_single_call() {
    // Checks the format only: tests never judge speed.
    let (code, out, err) = convt(&[
        "bench",
        "tf.nn.conv2d_transpose",
        "input_shape=[1,4,4,8]",
        "filters_shape=[2,2,4,8]",
        "output_shape=[1,8,8,4]",
        "strides=2",
        "padding=VALID",
        "--threads",
        "1",
        "--json",
        "--seconds",
        "0.01",
    ]);
    assert_eq!(code, 0, "{err}");
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in ["ms", "gflops", "peak_gflops", "percent_of_peak"] {
        assert!(
            line[key].as_f64().is_some_and(|v| v > 0.0),
            "{key} in {line}"
        );
    }
    assert_eq!(line["threads"], 1);
    // A refused call is refused here too.
    let (code, _, err) = convt(&[
        "bench",
        "tf.nn.conv2d",
        "input_shape=[1,2,2,1]",
        "filters_shape=[3,3,1,1]",
        "padding=VALID",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("kernel larger"), "{err}");
}
