//! Test support for the 12345 hotline bridge: start the bridge beside a [`TestApp`], sign requests
//! as the hotline does, and a real HTTP server that plays the hotline's callback endpoint.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use fengqiao::hotline::signature;
use fengqiao::hotline::{Bridge, HotlineSettings};
use fengqiao::settings::{HmacKey, Settings};
use fengqiao_domain::Clock as _;

use crate::TestApp;

/// The key the test hotline signs its requests with.
pub fn inbound_key() -> HmacKey {
    HmacKey { kid: "hotline-2026".to_owned(), secret: "test-inbound-secret-0123456789".to_owned() }
}

/// The key Fengqiao signs its callbacks with in the tests.
pub fn outbound_key() -> HmacKey {
    HmacKey { kid: "fengqiao-2026".to_owned(), secret: "test-outbound-secret-9876543210".to_owned() }
}

/// The Open311 key of the tests.
pub const OPEN311_KEY: &str = "open311-test-key";

/// Bridge settings for a test: free port, test keys, fast retries (40 ms doubling, 5 attempts).
pub fn test_settings(callback_url: Option<String>) -> HotlineSettings {
    HotlineSettings {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        unit_code: crate::DISTRICT.to_owned(),
        inbound_keys: vec![inbound_key()],
        outbound_key: outbound_key(),
        callback_url,
        backoff_base_ms: 40,
        backoff_max_ms: 400,
        poll_ms: 20,
        max_attempts: 5,
        request_timeout_ms: 2000,
        open311_api_keys: vec![OPEN311_KEY.to_owned()],
        ..HotlineSettings::default()
    }
}

/// A running bridge on a test's database and stream.
pub struct TestBridge {
    pub settings: Settings,
    pub addr: SocketAddr,
    app_clock: Arc<fengqiao_domain::clock::ManualClock>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    http: reqwest::Client,
}

impl TestBridge {
    /// Starts a bridge beside `app` (same database, stream and clock) with `hotline` settings.
    pub async fn spawn(app: &TestApp, hotline: HotlineSettings) -> TestBridge {
        let mut settings = app.settings.clone();
        settings.hotline = hotline;
        Self::start(settings, app.clock.clone()).await
    }

    async fn start(settings: Settings, clock: Arc<fengqiao_domain::clock::ManualClock>) -> TestBridge {
        let bridge = Bridge::build(&settings, clock.clone()).await.expect("bridge builds");
        let addr = bridge.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(bridge.run(async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder().build().expect("http client");
        TestBridge { settings, addr, app_clock: clock, stop: Some(stop), task: Some(task), http }
    }

    /// Stops the bridge gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("bridge task").expect("bridge stopped cleanly");
        }
    }

    /// Stops the bridge and starts it again on the same settings (new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut settings = self.settings.clone();
        settings.hotline.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        *self = Self::start(settings, self.app_clock.clone()).await;
    }

    /// The URL of `path` on the bridge.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The clock's now, in seconds, as the hotline would sign with.
    pub fn now(&self) -> i64 {
        self.app_clock.now().as_second()
    }

    /// POSTs `body` to `path`, signed with `key` at `timestamp`; returns status and JSON answer.
    pub async fn post_signed(
        &self,
        path: &str,
        body: &str,
        key: &HmacKey,
        timestamp: i64,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = self.http.post(self.url(path)).header("content-type", "application/json");
        for (name, value) in signature::headers(key, timestamp, body.as_bytes()) {
            request = request.header(name, value);
        }
        answer(request.body(body.to_owned()).send().await.expect("bridge answers")).await
    }

    /// POSTs `body` to `path` as the hotline does: signed now with the inbound key.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (StatusCode, serde_json::Value) {
        self.post_signed(path, &body.to_string(), &inbound_key(), self.now()).await
    }

    /// A signed GET of `path` (the signature covers an empty body).
    pub async fn get(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let mut request = self.http.get(self.url(path));
        for (name, value) in signature::headers(&inbound_key(), self.now(), b"") {
            request = request.header(name, value);
        }
        answer(request.send().await.expect("bridge answers")).await
    }

    /// An unsigned GET of `path` (Open311 readers, the OpenAPI document).
    pub async fn get_plain(&self, path: &str) -> (StatusCode, String) {
        let response = self.http.get(self.url(path)).send().await.expect("bridge answers");
        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
        (status, response.text().await.expect("body"))
    }
}

async fn answer(response: reqwest::Response) -> (StatusCode, serde_json::Value) {
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// A 12345 work order as the hotline posts it, in the test community.
pub fn work_order(number: &str) -> serde_json::Value {
    serde_json::json!({
        "order_number": number,
        "received_at": "2026-11-23T09:15:00+08:00",
        "channel": "phone",
        "caller": {"name": "张三", "phone": "13812345678"},
        "content": "楼上卫生间漏水渗入楼下卧室，双方协商未果。",
        "category": "邻里纠纷",
        "location": {"unit_code": crate::COMMUNITY, "address": "重庆市江津区几江街道艾坪山社区3栋"},
        "urgency": "normal",
        "reply_deadline": "2026-11-30T18:00:00+08:00"
    })
}

/// One callback as the fake hotline received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    /// What the fake hotline answered.
    pub answered: u16,
    /// Whether the signature verified with the outbound key.
    pub signed: bool,
    pub delivery_id: String,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct Hotline {
    received: Mutex<Vec<Received>>,
    /// Answer 503 to this many more requests.
    fail_next: Mutex<usize>,
    /// Answer 503 to everything.
    down: Mutex<bool>,
    /// Answer 400 to this many more requests.
    refuse_next: Mutex<usize>,
}

/// A real HTTP server playing the hotline's callback endpoint.
pub struct FakeHotline {
    pub url: String,
    state: Arc<Hotline>,
    _server: JoinHandle<()>,
}

async fn receive(State(state): State<Arc<Hotline>>, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let header = |name: &'static str| headers.get(name).map(|v| v.to_str().map(str::to_owned).map_err(|_| ()));
    let keys = [outbound_key()];
    // The fake hotline's clock is the wall clock; the test app's clock started at the wall clock.
    let now = jiff::Timestamp::now().as_second();
    let signed = signature::verify(&keys, header, &body, now, 3600).is_ok();
    let failing = {
        let mut fail = state.fail_next.lock().expect("lock");
        let down = *state.down.lock().expect("lock");
        if down || *fail > 0 {
            *fail = fail.saturating_sub(1);
            true
        } else {
            false
        }
    };
    let refusing = {
        let mut refuse = state.refuse_next.lock().expect("lock");
        let refusing = *refuse > 0;
        *refuse = refuse.saturating_sub(1);
        refusing
    };
    let (answered, text) = match (failing, refusing) {
        (true, _) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        (false, true) => (StatusCode::BAD_REQUEST, "unknown order number"),
        (false, false) => (StatusCode::OK, "ok"),
    };
    state.received.lock().expect("lock").push(Received {
        at: Instant::now(),
        answered: answered.as_u16(),
        signed,
        delivery_id: headers.get("x-fengqiao-delivery-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        body: serde_json::from_slice(&body).unwrap_or_default(),
    });
    (answered, text)
}

impl FakeHotline {
    /// Starts the fake hotline on a free port, answering 200.
    pub async fn start() -> FakeHotline {
        let state = Arc::new(Hotline::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/callbacks", listener.local_addr().expect("addr"));
        let router = axum::Router::new().route("/callbacks", axum::routing::post(receive)).with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeHotline { url, state, _server: server }
    }

    /// Answers 503 to the next `n` callbacks.
    pub fn fail_next(&self, n: usize) {
        *self.state.fail_next.lock().expect("lock") = n;
    }

    /// Answers 400 to the next `n` callbacks (the hotline refuses their content).
    pub fn refuse_next(&self, n: usize) {
        *self.state.refuse_next.lock().expect("lock") = n;
    }

    /// Answers 503 to every callback while `down`.
    pub fn set_down(&self, down: bool) {
        *self.state.down.lock().expect("lock") = down;
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    /// The callbacks answered 200, in arrival order.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.answered == 200).collect()
    }

    /// Waits until `done` holds for the requests received, polling; fails after `within`.
    pub async fn wait_for(&self, within: Duration, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; received: {received:#?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Polls `probe` until it returns `Some`, failing after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
