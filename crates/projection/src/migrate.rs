//! Schema migrations. Each runs once, in order, in a transaction, under an advisory lock so that
//! two instances starting together do not race. Read-model tables are created per generation by
//! [`crate::cases::create_generation`].

use tokio_postgres::Client;

use fengqiao_domain::sla::Sla;

use crate::{Error, Result, cases, deadlines, projector, referrals, statistics, work_queues};

/// The migrations, in order. Never edit one that has shipped; add the next.
const MIGRATIONS: &[(&str, &str)] = &[("0001_cases", include_str!("../migrations/0001_cases.sql"))];

/// Arbitrary constant naming Fengqiao's migration lock.
const LOCK_KEY: i64 = 0x000f_e9c1_a0f0;

/// Applies every migration not yet applied, then sets up the first generation of each read model.
/// Safe to run any number of times.
///
/// # Errors
/// Any database error; the failing migration's transaction is rolled back.
pub async fn run(client: &mut Client) -> Result<Vec<String>> {
    let tx = client.transaction().await?;
    let mut applied = apply(&tx, MIGRATIONS).await?;
    // Every read model, in the order the service starts their projectors.
    if projector::ensure(&tx, &cases::Cases).await? {
        applied.push(format!("{} read model", cases::NAME));
    }
    let sla = std::sync::Arc::new(Sla::bundled().map_err(|e| Error::Config(e.to_string()))?);
    if projector::ensure(&tx, &work_queues::WorkQueues::new(sla.clone())).await? {
        applied.push(format!("{} read model", work_queues::NAME));
    }
    if projector::ensure(&tx, &referrals::Referrals::new(sla.clone())).await? {
        applied.push(format!("{} read model", referrals::NAME));
    }
    if projector::ensure(&tx, &statistics::Statistics::new(sla.clone())).await? {
        applied.push(format!("{} read model", statistics::NAME));
    }
    if projector::ensure(&tx, &deadlines::Deadlines::new(sla)).await? {
        applied.push(format!("{} read model", deadlines::NAME));
    }
    tx.commit().await?;
    Ok(applied)
}

/// Applies those of `migrations` (name, SQL) not applied yet, in order, inside `tx`, after taking
/// the migration lock; returns their names. Other parts of Fengqiao with tables of their own (the
/// hotline bridge) migrate through here too, with names of their own.
///
/// # Errors
/// Any database error; the caller's transaction should then be dropped.
pub async fn apply(tx: &tokio_postgres::Transaction<'_>, migrations: &[(&str, &str)]) -> Result<Vec<String>> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let mut applied = Vec::new();
    for (name, sql) in migrations {
        let done = tx.query_opt("SELECT 1 FROM schema_migrations WHERE name = $1", &[name]).await?.is_some();
        if !done {
            tx.batch_execute(sql).await?;
            tx.execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[name]).await?;
            applied.push((*name).to_owned());
        }
    }
    Ok(applied)
}
