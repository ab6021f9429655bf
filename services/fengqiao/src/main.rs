//! `fengqiao`: serve, migrate, operate the read models, mint a development token, or drive a
//! running server with a demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use fengqiao::app::{self, Application};
use fengqiao::auth;
use fengqiao::settings::{HmacKey, PublicKey, Settings, TlsSettings};

mod demo;

#[derive(Debug, Parser)]
#[command(name = "fengqiao", version, about = "Fengqiao dispute-mediation case management")]
struct Cli {
    #[command(flatten)]
    overrides: Overrides,
    /// Print the effective settings (secrets redacted) and exit.
    #[arg(long, global = true)]
    print_config: bool,
    #[command(subcommand)]
    command: Cmd,
}

/// Settings that environment variables and flags override, in that order of precedence.
#[derive(Debug, Args)]
struct Overrides {
    /// TOML settings file, read over the built-in defaults.
    #[arg(long, global = true, env = "FENGQIAO_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, global = true, env = "FENGQIAO_GRPC_ADDR")]
    grpc_addr: Option<SocketAddr>,
    /// Prometheus scrape endpoint of `fengqiao serve` (e.g. 127.0.0.1:19464); none when unset.
    #[arg(long, global = true, env = "FENGQIAO_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    #[arg(long, global = true, env = "FENGQIAO_NATS_URL")]
    nats_url: Option<String>,
    /// SLA policy file replacing the compiled-in `deploy/sla.toml`.
    #[arg(long, global = true, env = "FENGQIAO_SLA_POLICY")]
    sla_policy: Option<PathBuf>,
    /// Calendar files replacing the compiled-in national calendars, comma-separated.
    #[arg(long, global = true, env = "FENGQIAO_CALENDARS", value_delimiter = ',')]
    calendars: Option<Vec<PathBuf>>,
    /// Committee directory file replacing the compiled-in `deploy/committees.toml`.
    #[arg(long, global = true, env = "FENGQIAO_COMMITTEES")]
    committees: Option<PathBuf>,
    #[arg(long, global = true, env = "FENGQIAO_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long, global = true, env = "FENGQIAO_STREAM")]
    stream: Option<String>,
    #[arg(long, global = true, env = "FENGQIAO_SUBJECT_PREFIX")]
    subject_prefix: Option<String>,
    #[arg(long, global = true, env = "FENGQIAO_REPLICAS")]
    replicas: Option<usize>,
    /// HMAC secret for bearer tokens (replaces the key list; key id `default`).
    #[arg(long, global = true, env = "FENGQIAO_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Ed25519 public keys for EdDSA bearer tokens, as `kid=path.pem[,kid=path.pem]` (replaces
    /// the configured list; two entries during a key rotation).
    #[arg(long, global = true, env = "FENGQIAO_JWT_ED25519_KEYS")]
    jwt_ed25519_keys: Option<String>,
    /// PEM certificate chain for TLS on the gRPC listener (with `--tls-key`).
    #[arg(long, global = true, env = "FENGQIAO_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the gRPC listener (with `--tls-cert`).
    #[arg(long, global = true, env = "FENGQIAO_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Run the timer worker in this instance (`true` or `false`).
    #[arg(long, global = true, env = "FENGQIAO_TIMERS")]
    timers: Option<bool>,
    /// How often the timer worker scans for due warnings and breaches, in milliseconds.
    #[arg(long, global = true, env = "FENGQIAO_TIMER_INTERVAL_MS")]
    timer_interval_ms: Option<u64>,
    #[command(flatten)]
    hotline: fengqiao::hotline::cli::HotlineOverrides,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve every gRPC service, the projector, the workers and the hotline bridge in one process.
    Serve,
    /// The 12345 hotline bridge: serve it alone, read its callback outbox, redeliver callbacks.
    Hotline {
        #[command(subcommand)]
        command: fengqiao::hotline::cli::Command,
    },
    /// Apply database migrations and set up the read models.
    Migrate,
    /// Mint a bearer token for development.
    Token {
        /// hotline, grid_worker, mediator, committee_lead, dispatcher, partner_agent, supervisor, admin
        #[arg(long)]
        role: String,
        /// Unit the actor acts for (12-digit division code, or a grid code).
        #[arg(long)]
        unit: String,
        /// Who acts (token subject).
        #[arg(long, default_value = "dev-user")]
        sub: String,
        /// Partner institution id, for partner agents.
        #[arg(long, default_value = "")]
        partner: String,
        /// Mediation committee id, for mediators and committee leads.
        #[arg(long, default_value = "")]
        committee: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 8 * 3600)]
        ttl: i64,
        /// Sign with this Ed25519 private key (PEM, PKCS#8) instead of the first HMAC key.
        #[arg(long, requires = "kid")]
        ed25519_key: Option<PathBuf>,
        /// Key id to name in the token header (with `--ed25519-key`).
        #[arg(long)]
        kid: Option<String>,
    },
    /// Print the authorisation matrix and the personal-data rule as Markdown
    /// (`docs/authorization.md`).
    AuthzMatrix,
    /// Inspect the read models, or rebuild one while the service keeps serving it.
    #[command(subcommand)]
    Projections(fengqiao::ops::Command),
    /// Register a handful of realistic cases on a running server and print the resulting queue.
    Demo {
        /// Server address; defaults to the configured gRPC address.
        #[arg(long)]
        addr: Option<String>,
    },
}

impl Overrides {
    fn apply(self) -> anyhow::Result<Settings> {
        let mut s = Settings::load(self.config.as_deref())?;
        if let Some(v) = self.grpc_addr {
            s.grpc_addr = v;
        }
        if let Some(v) = self.metrics_addr {
            s.metrics_addr = Some(v);
        }
        if let Some(v) = self.nats_url {
            s.nats_url = v;
        }
        if let Some(v) = self.sla_policy {
            s.rules.sla_policy = Some(v);
        }
        if let Some(v) = self.calendars {
            s.rules.calendars = v;
        }
        if let Some(v) = self.committees {
            s.rules.committees = Some(v);
        }
        if let Some(v) = self.database_url {
            s.database_url = v;
        }
        if let Some(v) = self.stream {
            s.stream = v;
        }
        if let Some(v) = self.subject_prefix {
            s.subject_prefix = v;
        }
        if let Some(v) = self.replicas {
            s.replicas = v;
        }
        if let Some(secret) = self.jwt_secret {
            s.auth.hmac_keys = vec![HmacKey { kid: "default".to_owned(), secret }];
        }
        if let Some(list) = self.jwt_ed25519_keys {
            s.auth.ed25519_keys = list
                .split(',')
                .filter(|e| !e.trim().is_empty())
                .map(|entry| {
                    let (kid, path) = entry
                        .split_once('=')
                        .ok_or_else(|| anyhow::anyhow!("FENGQIAO_JWT_ED25519_KEYS: {entry:?} is not kid=path"))?;
                    Ok(PublicKey { kid: kid.trim().to_owned(), pem: String::new(), pem_file: Some(path.trim().into()) })
                })
                .collect::<anyhow::Result<_>>()?;
        }
        if let Some(v) = self.timers {
            s.timers.enabled = v;
        }
        if let Some(v) = self.timer_interval_ms {
            s.timers.interval_ms = v;
        }
        if let (Some(cert_file), Some(key_file)) = (self.tls_cert, self.tls_key) {
            s.tls = Some(TlsSettings { cert_file, key_file });
        }
        self.hotline.apply(&mut s.hotline);
        Ok(s)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.overrides.apply()?;
    if cli.print_config {
        print!("{}", settings.redacted_toml());
        return Ok(());
    }
    match cli.command {
        Cmd::Serve => {
            fengqiao::telemetry::init();
            if let Some(addr) = settings.metrics_addr {
                fengqiao::telemetry::serve_metrics(addr)?;
            }
            let clock: Arc<dyn fengqiao_domain::Clock> = Arc::new(fengqiao_domain::clock::SystemClock);
            let bridge = match settings.hotline.enabled {
                true => Some(fengqiao::hotline::Bridge::build(&settings, clock.clone()).await?),
                false => None,
            };
            let app = Application::build(settings, clock).await?;
            let hotline = bridge.as_ref().map(|b| b.local_addr()).transpose()?;
            tracing::info!(addr = %app.local_addr()?, hotline = ?hotline, "fengqiao serving gRPC, and the hotline bridge when enabled");
            // One signal stops both; either failing stops the other.
            let (stop, stopping) = tokio::sync::watch::channel(false);
            let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let bridge_stop = stopped(stopping.clone());
            let mut bridge = tokio::spawn(async move {
                match bridge {
                    Some(bridge) => bridge.run(bridge_stop).await,
                    None => {
                        bridge_stop.await;
                        Ok(())
                    }
                }
            });
            let mut app = tokio::spawn(app.run(stopped(stopping)));
            let first = tokio::select! {
                () = app::shutdown_signal() => Ok(()),
                r = &mut app => r.map_err(anyhow::Error::from).and_then(|r| r.context("gRPC service")),
                r = &mut bridge => r.map_err(anyhow::Error::from).and_then(|r| r.context("hotline bridge")),
            };
            let _ = stop.send(true);
            let rest = async {
                if !app.is_finished() {
                    app.await??;
                }
                if !bridge.is_finished() {
                    bridge.await??;
                }
                anyhow::Ok(())
            };
            first.and(rest.await)
        }
        Cmd::Hotline { command } => fengqiao::hotline::cli::run(settings, command).await,
        Cmd::Migrate => {
            let pool = app::pool(&settings.database_url, 1)?;
            let mut client = pool.get().await.context("connecting to PostgreSQL")?;
            let mut applied = fengqiao_projection::migrate::run(&mut client).await?;
            applied.extend(fengqiao::hotline::migrate(&mut client).await?);
            if applied.is_empty() {
                println!("database is up to date");
            }
            for name in applied {
                println!("applied {name}");
            }
            Ok(())
        }
        Cmd::Token { role, unit, sub, partner, committee, ttl, ed25519_key, kid } => {
            anyhow::ensure!(auth::parse_role(&role).is_some(), "unknown role {role}");
            let mut claims = auth::claims(&settings.auth, &sub, &role, &unit, &partner, ttl);
            claims.committee = committee;
            let token = match (ed25519_key, kid) {
                (Some(path), Some(kid)) => {
                    let pem = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                    auth::mint_ed25519(&kid, &pem, &claims)?
                }
                _ => auth::mint(&settings.auth, &claims)?,
            };
            println!("{token}");
            Ok(())
        }
        Cmd::AuthzMatrix => {
            print!("{}", fengqiao::authz::render_markdown());
            Ok(())
        }
        Cmd::Projections(command) => fengqiao::ops::run(&settings, command).await,
        Cmd::Demo { addr } => {
            let addr = addr.unwrap_or_else(|| format!("http://{}", settings.grpc_addr));
            demo::run(&settings, &addr).await
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        // Clap checks names, groups and conflicts only when a command line is parsed.
        super::Cli::command().debug_assert();
    }
}
