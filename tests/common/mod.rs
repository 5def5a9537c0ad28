//! The conformance harness: cases recorded from a real framework (`manifest.json` + `.npy`
//! files, format in tests/fixtures/conformance/README.md), run through the library's call
//! API and through the `convt` binary.

use convt::call::{self, Arg, Args, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One recorded call.
pub struct Case {
    pub id: String,
    pub op: String,
    pub args: serde_json::Map<String, Value>,
    pub expect: Value,
    dir: PathBuf,
}

impl Case {
    fn npy_path(&self, v: &Value) -> Option<PathBuf> {
        v.get("npy")
            .and_then(Value::as_str)
            .map(|f| self.dir.join(f))
    }
}

/// The cases of fixture folder `folder` whose op starts with `prefix` (or whose id does).
pub fn cases(folder: &str, prefix: &str) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder);
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["op"].as_str().unwrap().starts_with(prefix)
                || c["id"].as_str().unwrap().starts_with(prefix)
        })
        .map(|c| Case {
            id: c["id"].as_str().unwrap().into(),
            op: c["op"].as_str().unwrap().into(),
            args: c["args"].as_object().unwrap().clone(),
            expect: c["expect"].clone(),
            dir: dir.clone(),
        })
        .collect()
}

/// Checks `got` against the case's expectation; returns a failure description.
pub fn judge(case: &Case, got: convt::Result<Tensor>) -> Option<String> {
    match (case.npy_path(&case.expect), got) {
        (Some(path), Ok(got)) => {
            let expected = Tensor::read_npy(&path).unwrap();
            if got.dtype() != expected.dtype() || got.shape() != expected.shape() {
                return Some(format!(
                    "{}: got {} {:?}, expected {} {:?}",
                    case.id,
                    got.dtype(),
                    got.shape(),
                    expected.dtype(),
                    expected.shape()
                ));
            }
            let (diff, scale, tol) = match (&got, &expected) {
                (Tensor::F32(g), Tensor::F32(e)) => (
                    g.iter()
                        .zip(e)
                        .map(|(a, b)| (a - b).abs() as f64)
                        .fold(0.0, f64::max),
                    e.iter().map(|v| v.abs() as f64).fold(1.0, f64::max),
                    1e-4,
                ),
                (Tensor::F64(g), Tensor::F64(e)) => (
                    g.iter()
                        .zip(e)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max),
                    e.iter().map(|v| v.abs()).fold(1.0, f64::max),
                    1e-9,
                ),
                _ => unreachable!(),
            };
            (diff > tol * scale || diff.is_nan())
                .then(|| format!("{}: max error {diff} > {tol} * {scale}", case.id))
        }
        (Some(_), Err(e)) => Some(format!(
            "{}: refused ({e}) but the framework computed it",
            case.id
        )),
        (None, Ok(_)) => Some(format!(
            "{}: computed, but the framework refused: {}",
            case.id, case.expect["error"]
        )),
        (None, Err(_)) => None,
    }
}

/// The case's arguments with arrays loaded.
pub fn api_args(case: &Case) -> Args {
    let mut args = Args::new();
    for (name, v) in &case.args {
        match case.npy_path(v) {
            Some(path) => args.insert(name, Arg::Tensor(Tensor::read_npy(&path).unwrap())),
            None => args.insert(name, Arg::Json(v.clone())),
        }
    }
    args
}

/// Every case through `convt::call::run`; returns how many were checked.
pub fn check_api(cases: &[Case]) -> usize {
    assert!(!cases.is_empty());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| judge(c, call::run(&c.op, &api_args(c))))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

/// Every case through `convt run ... --out FILE`: a refusal must exit 2, print
/// `error: ...` and write no file.
pub fn check_cli(cases: &[Case]) {
    assert!(!cases.is_empty());
    let dir = std::env::temp_dir().join(format!(
        "convt-conformance-{}-{}",
        std::process::id(),
        cases[0].id
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = vec![];
    for case in cases {
        let out = dir.join(format!("{}.npy", case.id));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_convt"));
        cmd.arg("run").arg(&case.op);
        for (name, v) in &case.args {
            match case.npy_path(v) {
                Some(path) => cmd.arg(format!("{name}={}", path.display())),
                None => cmd.arg(format!("{name}={v}")),
            };
        }
        let output = cmd.arg("--out").arg(&out).output().unwrap();
        let got = if output.status.success() {
            Ok(Tensor::read_npy(&out).unwrap())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.code() != Some(2) || !stderr.starts_with("error: ") || out.exists() {
                failures.push(format!(
                    "{}: refusal must exit 2 with `error: ...` and no file; got {:?} {stderr}",
                    case.id, output.status
                ));
            }
            Err(convt::ConvError::Argument {
                arg: "cli".into(),
                message: stderr.into(),
            })
        };
        failures.extend(judge(case, got));
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
