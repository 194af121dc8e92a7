//! A real browser for the dashboard's tests: Debian's headless Chromium, driven over WebDriver
//! by chromedriver (a process per test), with fantoccini. Each page a test looks at can be
//! saved as a screenshot under `target/dashboard-screenshots/`.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a test waits for chromedriver to start or a page element to appear.
const WAIT: Duration = Duration::from_secs(30);
/// How long a click that leaves the page may take to do so.
const CLICK_SETTLES: Duration = Duration::from_secs(10);

pub struct Browser {
    pub client: Client,
    /// Where the dashboard is: `http://127.0.0.1:PORT`.
    base: String,
    /// Names this test's screenshots.
    test: String,
    /// Secret values no page may contain: every page the browser lands on is searched.
    forbidden: Vec<String>,
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A fresh headless browser (its own profile, so no cookies) for the dashboard at `base`.
    pub async fn open(base: &str, test: &str, forbidden: &[&str]) -> Browser {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "the dashboard's browser tests need Debian's chromium and chromium-driver \
             (tests/run.sh installs them)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        // chromedriver says when it listens.
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("started successfully") {
                    return;
                }
            }
            panic!("chromedriver exited before it listened");
        })
        .await
        .expect("chromedriver listens within 30 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromium starts under chromedriver");
        Browser {
            client,
            base: base.to_owned(),
            test: test.to_owned(),
            forbidden: forbidden.iter().map(|v| v.to_string()).collect(),
            _driver: driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
        self.search_for_secrets().await;
    }

    /// Fails if the page's source holds one of the forbidden (secret) values.
    async fn search_for_secrets(&self) {
        let source = self.client.source().await.unwrap();
        for secret in &self.forbidden {
            let path = self.path().await;
            assert!(
                !source.contains(secret.as_str()),
                "{path} shows a secret value"
            );
        }
    }

    /// The path and query of the page shown.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The element with this id, once the page shows it.
    pub async fn id(&self, id: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id} did not appear: {e}"))
    }

    /// The visible text of the element with this id.
    pub async fn text(&self, id: &str) -> String {
        self.id(id).await.text().await.unwrap()
    }

    /// Types `text` into the field with this id, replacing what it held.
    pub async fn fill(&self, id: &str, text: &str) {
        let field = self.id(id).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks the element with this id. When that leaves the page (a link or a form's button),
    /// it waits until the page it left is gone, so that what follows reads the new one.
    pub async fn click(&self, id: &str) {
        let old_page = self.client.find(Locator::Css("html")).await.unwrap();
        self.id(id).await.click().await.unwrap();
        let started = std::time::Instant::now();
        // A page that stays (a checkbox) keeps its element; a new page makes it stale.
        while old_page.tag_name().await.is_ok() && started.elapsed() < CLICK_SETTLES {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.search_for_secrets().await;
    }

    /// Ticks a checkbox: the page stays.
    pub async fn tick(&self, id: &str) {
        self.id(id).await.click().await.unwrap();
    }

    /// Every `selector` element's text.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.client.find_all(Locator::Css(selector)).await.unwrap() {
            texts.push(element.text().await.unwrap());
        }
        texts
    }

    /// The page's HTML as the server sent it and the browser holds it.
    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Saves the page as `target/dashboard-screenshots/<test>-<step>.png`.
    pub async fn screenshot(&self, step: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{}-{step}.png", self.test)), png).unwrap();
    }

    /// Signs in through the sign-in page and waits for the connectors list.
    pub async fn sign_in(&self, user: &str, password: &str) {
        self.goto("/login").await;
        self.fill("username", user).await;
        self.fill("password", password).await;
        self.click("sign-in").await;
        assert_eq!(self.text("signed-in-as").await, user);
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}
