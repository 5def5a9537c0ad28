//! The explain page in a real browser: headless Chromium driven through chromedriver's
//! WebDriver protocol. The test loads the page from disk, steps through input cells,
//! changes parameters, checks the cells shown, and takes a screenshot
//! (target/explain-page.png).
//!
//! Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them). Where they are
//! missing the test says so and passes, except under CI (`CI` set), where it fails.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Driver {
    child: Child,
    base: String,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(url: &str, body: Value) -> Value {
    let mut response = ureq::post(url)
        .send_json(&body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    response.body_mut().read_json::<Value>().unwrap()["value"].clone()
}

fn get(url: &str) -> Value {
    let mut response = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response.body_mut().read_json::<Value>().unwrap()["value"].clone()
}

impl Driver {
    fn start(chromium: &Path, chromedriver: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = std::env::temp_dir().join(format!("convt-chromium-{}", std::process::id()));
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1200,760", format!("--user-data-dir={}", profile.display())]
        }}}});
        let session = post(&format!("{base}/session"), caps)["sessionId"]
            .as_str()
            .unwrap()
            .to_string();
        Driver {
            child,
            base,
            session,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    fn element(&self, css: &str) -> String {
        let v = post(
            &self.url("/element"),
            json!({"using": "css selector", "value": css}),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        post(&self.url(&format!("/element/{id}/click")), json!({}));
    }

    fn text(&self, css: &str) -> String {
        let id = self.element(css);
        get(&self.url(&format!("/element/{id}/text")))
            .as_str()
            .unwrap()
            .to_string()
    }

    fn script(&self, script: &str) -> Value {
        post(
            &self.url("/execute/sync"),
            json!({"script": script, "args": []}),
        )
    }

    fn highlighted(&self, grid: &str) -> Vec<String> {
        let v = self.script(&format!(
            "return [...document.querySelectorAll('#{grid} .cell.hl')].map(e => e.id)"
        ));
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

#[test]
fn explain_page_steps_and_updates_in_chromium() {
    let (Some(chromium), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver (see .ci/run)"
        );
        eprintln!("skipped: chromium / chromedriver not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("tests/fixtures/conformance");
    let page = std::env::temp_dir().join(format!("convt-explain-{}.html", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_convt"))
        .args(["explain", "tf.nn.conv2d_transpose"])
        .arg(format!(
            "input={}",
            fixtures.join("seed_example_input.npy").display()
        ))
        .arg(format!(
            "filters={}",
            fixtures.join("seed_example_filters.npy").display()
        ))
        .args([
            "output_shape=[1,6,6,1]",
            "strides=[1,2,2,1]",
            "padding=SAME",
            "--html",
        ])
        .arg(&page)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let driver = Driver::start(&chromium, &chromedriver);
    post(
        &driver.url("/url"),
        json!({"url": format!("file://{}", page.display())}),
    );

    // The seed's call as given: legal sizes 5 and 6, the 6x6 result with 1.5 3 / 4.5 6.
    assert_eq!(driver.text("#legal-h"), "5, 6");
    assert_eq!(driver.text("#big-0-4").lines().next(), Some("1.5"));
    assert_eq!(driver.text("#big-1-5").lines().next(), Some("6"));

    // Step to input[0,2] = 1.5: it stamps output rows 0..1, columns 4..5.
    driver.click("#next");
    driver.click("#next");
    let mut hl = driver.highlighted("big");
    hl.sort();
    assert_eq!(hl, ["big-0-4", "big-0-5", "big-1-4", "big-1-5"]);
    assert_eq!(driver.highlighted("small"), ["small-0-2"]);
    assert!(
        driver
            .text("#status")
            .contains("input[0,2] = 1.5 stamps the kernel onto output rows 0..1, columns 4..5"),
        "{}",
        driver.text("#status")
    );
    let png = get(&driver.url("/screenshot"));
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        png.as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    std::fs::write(root.join("target/explain-page.png"), &png).unwrap();

    // Stride 1 (SAME): the only legal output size is 3; the grid becomes 3x3 of stamp counts.
    driver.click("#stride option[value='1']");
    assert_eq!(driver.text("#legal-h"), "3");
    assert_eq!(
        driver.script("return document.querySelectorAll('#big .cell').length"),
        json!(9)
    );
    // Kernel 2, stride 1, VALID: 3 -> 4, and the corner output cell has one stamp.
    driver.click("#padding option[value='VALID']");
    assert_eq!(driver.text("#legal-h"), "4");
    assert_eq!(driver.text("#big-0-0").lines().next(), Some("1"));
    assert_eq!(driver.text("#big-1-1").lines().next(), Some("4"));
    // Stride 3 with kernel 2 leaves gaps: cells no input reaches show 0 stamps.
    driver.click("#stride option[value='3']");
    assert_eq!(driver.text("#legal-h"), "8, 9, 10");
    driver.click("#output-h option[value='10']");
    assert_eq!(driver.text("#big-2-0").lines().next(), Some("0"));
    std::fs::remove_file(&page).ok();
}
