//! Effective settings: typed defaults, then an optional TOML file, then `FENGQIAO_*` environment
//! variables, then command-line flags (the last two handled by clap in `main`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything `fengqiao serve` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// gRPC listen address; port 0 picks a free port (tests).
    pub grpc_addr: SocketAddr,
    /// NATS server URL; a cluster as a comma-separated list of its servers' URLs.
    pub nats_url: String,
    pub database_url: String,
    /// JetStream stream holding every case.
    pub stream: String,
    /// Subject prefix of case subjects.
    pub subject_prefix: String,
    /// Stream replicas: 1 on one machine, 3 on a cluster.
    pub replicas: usize,
    pub auth: AuthSettings,
    /// Longest a query waits for its `min_sequence`.
    pub read_wait_ms: u64,
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Database connections in the pool for queries (each projector has one more of its own).
    pub db_pool_size: usize,
    /// Queue changes buffered for each live watcher; a watcher further behind is told to resync.
    pub watch_buffer: usize,
    /// Live watches one caller (token subject) may hold open at once.
    pub max_watches_per_caller: usize,
    /// TLS for the gRPC listener; plaintext when absent (behind a TLS-terminating proxy, or on
    /// loopback in development).
    pub tls: Option<TlsSettings>,
    /// Where `fengqiao serve` answers Prometheus scrapes (any path, plain HTTP); keep it on
    /// loopback or a private network. No metrics endpoint when absent.
    pub metrics_addr: Option<SocketAddr>,
    /// The timer worker that fires due warnings and breaches (docs/deadlines.md).
    pub timers: TimerSettings,
    /// The 12345 hotline bridge (`crate::hotline`).
    pub hotline: crate::hotline::HotlineSettings,
    /// The SLA policy, calendars and committee directory deadlines are computed by.
    pub rules: RulesSettings,
}

/// Where the deadline rules come from: each file given replaces the copy of `deploy/` compiled
/// into the binary. Every process of a deployment (`serve`, `projections rebuild`, extra timer
/// workers) must be given the same files; a changed policy applies to running clocks from the next
/// computation, and `fengqiao projections rebuild deadlines` recomputes every open deadline by it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesSettings {
    /// The SLA policy (format of `deploy/sla.toml`).
    pub sla_policy: Option<PathBuf>,
    /// Jurisdiction calendars (format of `deploy/calendars/*.toml`); when any is given, these are
    /// all the calendars there are.
    pub calendars: Vec<PathBuf>,
    /// The committee directory the escalation ladder routes to (format of `deploy/committees.toml`).
    pub committees: Option<PathBuf>,
}

impl RulesSettings {
    /// Loads the rules: the files given, the compiled-in copies for the rest.
    ///
    /// # Errors
    /// A file unreadable or invalid, named with the problem the parser found.
    pub fn load(&self) -> anyhow::Result<fengqiao_domain::sla::Sla> {
        use anyhow::Context as _;
        use fengqiao_domain::sla;
        let read = |path: &Path, what: &str| {
            std::fs::read_to_string(path).with_context(|| format!("reading the {what} {}", path.display()))
        };
        let policy = match &self.sla_policy {
            Some(path) => read(path, "SLA policy")?,
            None => sla::BUNDLED_POLICY.to_owned(),
        };
        let calendars: Vec<String> = if self.calendars.is_empty() {
            sla::BUNDLED_CALENDARS.iter().map(|c| (*c).to_owned()).collect()
        } else {
            self.calendars.iter().map(|p| read(p, "calendar")).collect::<anyhow::Result<_>>()?
        };
        let committees = match &self.committees {
            Some(path) => read(path, "committee directory")?,
            None => sla::BUNDLED_COMMITTEES.to_owned(),
        };
        let names = |kind: &str, path: &Option<PathBuf>| match path {
            Some(p) => format!("{kind} {}", p.display()),
            None => format!("{kind} compiled in"),
        };
        let texts: Vec<&str> = calendars.iter().map(String::as_str).collect();
        let rules = sla::Sla::from_texts(&policy, &texts).with_context(|| {
            format!(
                "loading the {} with its calendars ({})",
                names("SLA policy", &self.sla_policy),
                if self.calendars.is_empty() { "compiled in".to_owned() } else { format!("{:?}", self.calendars) }
            )
        })?;
        let directory = fengqiao_domain::directory::Directory::parse(&committees)
            .with_context(|| format!("loading the {}", names("committee directory", &self.committees)))?;
        Ok(rules.with_directory(directory))
    }
}

/// The timer worker of `fengqiao serve`. Any number of instances may run one at once: each
/// deadline still warns once and is breached once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimerSettings {
    /// Whether this instance runs a timer worker.
    pub enabled: bool,
    /// How often it looks for due warnings and breaches, in milliseconds: the longest a firing
    /// waits past its instant (plus the deadlines read model's lag).
    pub interval_ms: u64,
    /// Most firings taken from one scan; the rest wait for the next one.
    pub batch: u32,
    /// Cases whose firings are committed side by side (one case's firings go one after another):
    /// their durable publishes then share the stream's disk writes.
    pub concurrency: usize,
}

impl Default for TimerSettings {
    fn default() -> Self {
        Self { enabled: true, interval_ms: 1000, batch: 500, concurrency: 16 }
    }
}

impl TimerSettings {
    /// The scan interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(1))
    }

    /// Refuses settings a worker cannot run with.
    ///
    /// # Errors
    /// A zero interval, batch or concurrency, named.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.interval_ms > 0,
            "timers.interval_ms: must be at least 1 (set timers.enabled = false instead)"
        );
        anyhow::ensure!(self.batch > 0, "timers.batch: must be at least 1");
        anyhow::ensure!(self.concurrency > 0, "timers.concurrency: must be at least 1");
        Ok(())
    }
}

/// The gRPC listener's certificate and key (PEM files), served with rustls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The leaf certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Bearer-token verification. A token names its key in the header's `kid`; every key id is
/// unique across both lists. During a rotation two keys are configured: the new one, which the
/// identity provider signs with from now on, and the old one until its last token has expired.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HMAC-SHA256 (HS256) shared secrets by key id.
    pub hmac_keys: Vec<HmacKey>,
    /// Ed25519 (EdDSA) public keys by key id: the identity provider keeps the private key.
    pub ed25519_keys: Vec<PublicKey>,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

/// One HMAC key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacKey {
    pub kid: String,
    pub secret: String,
}

/// One public key, as PEM text (`-----BEGIN PUBLIC KEY-----`) or in a PEM file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKey {
    pub kid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem_file: Option<PathBuf>,
}

impl PublicKey {
    /// The key's PEM text, read from `pem_file` when `pem` is empty.
    ///
    /// # Errors
    /// Neither or both given, or the file cannot be read.
    pub fn pem_text(&self) -> anyhow::Result<String> {
        match (self.pem.trim().is_empty(), &self.pem_file) {
            (false, None) => Ok(self.pem.clone()),
            (true, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("key {}: cannot read {}: {e}", self.kid, path.display())),
            _ => anyhow::bail!("key {}: give exactly one of `pem` and `pem_file`", self.kid),
        }
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.hmac_keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("AuthSettings")
            .field("hmac_keys", &format!("{kids:?} (secrets redacted)"))
            .field("ed25519_keys", &self.ed25519_keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// Development key: `fengqiao serve` and `fengqiao token` agree on it out of the box. Production
/// sets `FENGQIAO_JWT_SECRET` (or a key list in the TOML file).
pub const DEV_SECRET: &str = "fengqiao-local-development-secret-change-me";

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            hmac_keys: vec![HmacKey { kid: "dev".to_owned(), secret: DEV_SECRET.to_owned() }],
            ed25519_keys: Vec::new(),
            issuer: "fengqiao".to_owned(),
            audience: "fengqiao-api".to_owned(),
            leeway_secs: 5,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            nats_url: "nats://127.0.0.1:14222".to_owned(),
            database_url: "postgres://postgres@127.0.0.1:5432/fengqiao".to_owned(),
            stream: "FENGQIAO_CASES".to_owned(),
            subject_prefix: "fengqiao".to_owned(),
            replicas: 1,
            auth: AuthSettings::default(),
            read_wait_ms: 5000,
            max_message_bytes: 1024 * 1024,
            db_pool_size: 16,
            watch_buffer: 1024,
            max_watches_per_caller: 4,
            tls: None,
            metrics_addr: None,
            timers: TimerSettings::default(),
            hotline: crate::hotline::HotlineSettings::default(),
            rules: RulesSettings::default(),
        }
    }
}

impl Settings {
    /// Defaults overlaid with a TOML file, when one is given.
    ///
    /// # Errors
    /// The file cannot be read or holds unknown or mistyped keys.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = file else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// How long a query waits for its minimum sequence.
    pub fn read_wait(&self) -> Duration {
        Duration::from_millis(self.read_wait_ms)
    }

    /// The settings as TOML with secrets redacted, for `--print-config`.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        for key in &mut shown.auth.hmac_keys {
            key.secret = "<redacted>".to_owned();
        }
        shown.hotline.redact();
        shown.database_url = redact_url(&shown.database_url);
        shown.nats_url = shown.nats_url.split(',').map(redact_url).collect::<Vec<_>>().join(",");
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render settings: {e}"))
    }
}

/// Hides a password in `scheme://user:password@host`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:<redacted>{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own under the system's temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("fengqiao-rules-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).expect("a scratch directory");
            Self(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).expect("a scratch file");
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn without_files_the_rules_are_the_compiled_in_ones() {
        let rules = RulesSettings::default().load().expect("the compiled-in rules load");
        let bundled = fengqiao_domain::sla::Sla::bundled().expect("bundled");
        assert_eq!(rules.policy().version(), bundled.policy().version());
        assert_eq!(rules.policy().version(), "2025-1");
    }

    #[test]
    fn a_policy_file_replaces_the_compiled_in_policy() {
        let scratch = Scratch::new();
        let text = fengqiao_domain::sla::BUNDLED_POLICY
            .replace("version = \"2025-1\"", "version = \"jiangjin-2026\"")
            .replace("length = \"30 days\"\npausable = true", "length = \"20 days\"\npausable = true");
        assert!(text.contains("jiangjin-2026") && text.contains("\"20 days\""), "the edit applies to the shipped file");
        let rules = RulesSettings { sla_policy: Some(scratch.write("sla.toml", &text)), ..RulesSettings::default() }
            .load()
            .expect("the edited policy loads");
        assert_eq!(rules.policy().version(), "jiangjin-2026");
        let mediation = rules.policy().clock(fengqiao_domain::event::pb::Clock::Mediation).expect("mediation clock");
        let twenty_days = fengqiao_domain::sla::parse_length("length", "20 days").expect("a length");
        assert_eq!(mediation.length, twenty_days);
    }

    #[test]
    fn an_unreadable_or_invalid_file_is_refused_by_name() {
        let scratch = Scratch::new();
        let missing = scratch.0.join("nowhere.toml");
        let err = RulesSettings { sla_policy: Some(missing.clone()), ..RulesSettings::default() }
            .load()
            .expect_err("a missing file is refused");
        assert!(format!("{err:#}").contains(&missing.display().to_string()), "{err:#}");

        let broken = fengqiao_domain::sla::BUNDLED_POLICY.replace("length = \"30 days\"", "length = \"thirty days\"");
        let path = scratch.write("broken.toml", &broken);
        let err = RulesSettings { sla_policy: Some(path.clone()), ..RulesSettings::default() }
            .load()
            .expect_err("a bad length is refused");
        let message = format!("{err:#}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("thirty days"), "the problem is named: {message}");

        let calendar = scratch.write("cal.toml", "format = 1\n");
        let err = RulesSettings { calendars: vec![calendar], ..RulesSettings::default() }
            .load()
            .expect_err("an incomplete calendar is refused");
        assert!(format!("{err:#}").contains("cal.toml"), "{err:#}");
    }
}
