-- Tables of the `work_queues` read model beside the summary (schema_summary.sql), in the
-- generation schema named by {schema}.

-- What the queues add to the summary: who works the case and when it is due.
CREATE TABLE {schema}.case_work (
    case_id       uuid PRIMARY KEY,
    -- Mediators assigned (kept across closure: a reopened case goes back to them).
    mediator_ids  jsonb NOT NULL,
    -- 1 normal, 2 high, 3 critical (see `work_queues::priority`).
    priority      smallint NOT NULL,
    -- The deadline that governs the case now (ms since the epoch), and which clock it is.
    due_at_ms     bigint,
    due_clock     smallint NOT NULL,
    dispatched_at timestamptz,
    accepted_at   timestamptz,
    -- The case's deadline clocks (fengqiao_domain::deadlines::Clocks), folded event by event.
    clocks        jsonb NOT NULL
);

-- One row per (queue, open case). Queue kind 1 = a committee (queue_id = committee id), 2 = a
-- mediator (queue_id = mediator id). Sort keys are copied here so that a page is one index range.
CREATE TABLE {schema}.queue_entries (
    queue_kind       smallint NOT NULL,
    queue_id         text COLLATE "C" NOT NULL,
    case_id          uuid NOT NULL,
    -- The owning committee's unit: callers see entries within their unit subtree only.
    unit             text COLLATE "C" NOT NULL,
    state            smallint NOT NULL,
    priority         smallint NOT NULL,
    -- 4 - priority: ascending order puts the most urgent first, so one index serves the order.
    priority_rank    smallint NOT NULL,
    urgency          smallint NOT NULL,
    risk_level       smallint NOT NULL,
    category         text NOT NULL,
    -- Due time in ms; 9223372036854775807 when the case has no deadline (sorted last).
    due_key          bigint NOT NULL,
    registered_at_ms bigint NOT NULL,
    PRIMARY KEY (queue_kind, queue_id, case_id)
);

-- A page in each order is one index range scan (keyset paging; see docs/read-models.md).
CREATE INDEX queue_by_due ON {schema}.queue_entries (queue_kind, queue_id, due_key, case_id);
CREATE INDEX queue_by_priority ON {schema}.queue_entries (queue_kind, queue_id, priority_rank, due_key, case_id);
CREATE INDEX queue_by_registration ON {schema}.queue_entries (queue_kind, queue_id, registered_at_ms, case_id);
CREATE INDEX queue_entries_case ON {schema}.queue_entries (case_id);

-- What a queue page reads: one view, so a page locks one relation of this model (see
-- docs/read-models.md, "Rebuild").
CREATE VIEW {schema}.queue_items AS
SELECT e.queue_kind, e.queue_id, e.unit, e.state AS entry_state, e.priority, e.priority_rank, e.urgency AS entry_urgency,
       e.risk_level AS entry_risk_level, e.category AS entry_category, e.due_key, e.registered_at_ms,
       c.case_id, c.state, c.channel, c.external_ref, c.category, c.description, c.unit_code, c.address, c.urgency,
       c.risk_signals, c.parties, c.tier, c.committee_id, c.committee_unit_code, c.owner_unit, c.risk_level,
       c.version, c.registered_at, c.updated_at,
       w.mediator_ids, w.due_at_ms, w.due_clock
FROM {schema}.queue_entries e
JOIN {schema}.cases c ON c.case_id = e.case_id
JOIN {schema}.case_work w ON w.case_id = e.case_id;
