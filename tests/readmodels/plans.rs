//! The queue pages stay index range scans at national volume: on a generated work-queue read
//! model of 100,000 open cases (200,000 queue entries), PostgreSQL plans a mediator's page and a
//! committee's page, first and next, filtered or not, as an index scan of `queue_entries` in the
//! page's order, with no sequential scan and no sort.

use std::time::Instant;

use fengqiao_projection::work_queues::{self, Cursor, QueueKind, QueueOrder, QueuePage};
use fengqiao_tests::*;

/// Open cases generated; each is on one committee's queue (of 1,000) and one mediator's (of 4,000).
const CASES: i64 = 100_000;

/// Fills the live work-queue generation with `CASES` cases in 50 communities of the street.
async fn generate(db: &tokio_postgres::Client) {
    db.batch_execute(&format!(
        "CREATE TEMP TABLE gen AS
           SELECT i,
                  ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid AS case_id,
                  '5001160010' || lpad((i % 50)::text, 2, '0') AS unit,
                  'committee-' || (i % 1000) AS committee,
                  'm-' || (i % 4000) AS mediator,
                  1 + i % 3 AS priority,
                  1764000000000 + (i::bigint * 104729) % 2592000000 AS due
           FROM generate_series(1, {CASES}) i;
         INSERT INTO rm_work_queues_1.cases
           SELECT case_id, 4, 1, 'GEN-' || i, '邻里纠纷', '', unit, '', 1, '[]', '[]', 3, committee, unit, unit, 1, 4,
                  now(), now(), i
           FROM gen;
         INSERT INTO rm_work_queues_1.case_work
           SELECT case_id, jsonb_build_array(mediator), priority, due, 2, now(), now(), '{{}}' FROM gen;
         INSERT INTO rm_work_queues_1.queue_entries
           SELECT k, CASE k WHEN 1 THEN committee ELSE mediator END, case_id, unit, 4, priority, 4 - priority, 1, 1,
                  '邻里纠纷', due, 1764000000000 + i
           FROM gen, (VALUES (1::smallint), (2::smallint)) AS kinds(k);
         ANALYZE rm_work_queues_1.cases;
         ANALYZE rm_work_queues_1.case_work;
         ANALYZE rm_work_queues_1.queue_entries;"
    ))
    .await
    .expect("generated work queues");
}

/// Every node of a plan, as (node type, relation, index).
fn nodes(plan: &serde_json::Value, out: &mut Vec<(String, String, String)>) {
    let text = |key: &str| plan.get(key).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
    out.push((text("Node Type"), text("Relation Name"), text("Index Name")));
    for child in plan.get("Plans").and_then(serde_json::Value::as_array).into_iter().flatten() {
        nodes(child, out);
    }
}

fn page(kind: QueueKind, id: &str, order: QueueOrder) -> QueuePage {
    QueuePage {
        kind,
        queue_id: id.to_owned(),
        unit_prefix: "500116".to_owned(),
        states: Vec::new(),
        priorities: Vec::new(),
        risk_levels: Vec::new(),
        urgencies: Vec::new(),
        category: None,
        due_before: None,
        order,
        after: None,
        limit: 50,
    }
}

#[tokio::test]
async fn queue_pages_are_index_scans_on_a_large_generated_table() {
    let settings = fresh_settings();
    create_database(&settings).await.unwrap();
    let db = connect(&settings.database_url).await.unwrap();
    let started = Instant::now();
    generate(&db).await;
    let generated = started.elapsed();
    let entries: i64 = db.query_one("SELECT count(*) FROM work_queue_items", &[]).await.unwrap().get(0);
    assert_eq!(entries, 2 * CASES);

    let case_id = uuid::Uuid::parse_str("00000000-0000-4000-8000-000000000fa0").unwrap();
    let mediator_next = QueuePage {
        after: Some(Cursor::Due { due_key: 1_765_000_000_000, case_id }),
        ..page(QueueKind::Mediator, "m-17", QueueOrder::Due)
    };
    let filtered = QueuePage {
        states: vec![4],
        priorities: vec![2, 3],
        due_before: Some(1_766_000_000_000),
        ..page(QueueKind::Mediator, "m-17", QueueOrder::Due)
    };
    let committee_next = QueuePage {
        after: Some(Cursor::Priority { rank: 1, due_key: 1_765_000_000_000, case_id }),
        ..page(QueueKind::Committee, "committee-17", QueueOrder::Priority)
    };
    let pages = [
        ("mediator, first page", page(QueueKind::Mediator, "m-17", QueueOrder::Due), "queue_by_due"),
        ("mediator, next page", mediator_next, "queue_by_due"),
        ("mediator, filtered", filtered, "queue_by_due"),
        ("committee, first page", page(QueueKind::Committee, "committee-17", QueueOrder::Due), "queue_by_due"),
        ("committee, by priority", committee_next, "queue_by_priority"),
        (
            "committee, by registration",
            page(QueueKind::Committee, "committee-17", QueueOrder::Registered),
            "queue_by_registration",
        ),
    ];
    for (what, q, index) in pages {
        let plan = work_queues::explain(&db, &q).await.unwrap();
        let mut all = Vec::new();
        nodes(&plan[0]["Plan"], &mut all);
        let shown = serde_json::to_string_pretty(&plan).unwrap();
        assert!(all.iter().all(|(node, ..)| node != "Seq Scan" && node != "Sort"), "{what}: {shown}");
        assert!(
            all.iter().any(|(node, relation, used)| node.starts_with("Index")
                && relation == "queue_entries"
                && used == index),
            "{what}: not an index scan of queue_entries by {index}: {shown}"
        );
        // And the page is what the index range holds.
        let items = work_queues::list(&db, &q).await.unwrap();
        assert!(!items.is_empty() && items.len() <= 50, "{what}: {} items", items.len());
    }
    eprintln!("generated {} queue entries in {generated:?}", 2 * CASES);
    cleanup(&settings).await;
}
