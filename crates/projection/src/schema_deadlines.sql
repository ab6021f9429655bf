-- Tables of the `deadlines` read model (the escalation timers) beside the summary
-- (schema_summary.sql), in the generation schema named by {schema}.

-- Each case's deadline clocks (fengqiao_domain::deadlines::Clocks) and when each open deadline
-- warned and was breached, folded event by event.
CREATE TABLE {schema}.case_deadlines (
    case_id uuid PRIMARY KEY,
    tracked jsonb NOT NULL
);

-- One row per open deadline of a case: every clock that runs (or is paused) and that the SLA
-- policy applies to. A row goes when its clock stops.
CREATE TABLE {schema}.deadlines (
    case_id             uuid NOT NULL,
    -- `{clock}:{case version of the event that started it}`, e.g. `sign_for:2`.
    deadline_id         text COLLATE "C" NOT NULL,
    -- events.v1.Clock.
    clock               smallint NOT NULL,
    started_at_ms       bigint NOT NULL,
    warn_at_ms          bigint NOT NULL,
    -- The end of the year 9999 for a deadline that cannot be represented: it never comes.
    due_at_ms           bigint NOT NULL,
    -- The clock is stopped by a pause that began at this instant; null while it runs.
    paused_since_ms     bigint,
    -- 1 running, 2 warned, 3 breached (api EscalationState).
    state               smallint NOT NULL,
    -- When the warning and the breach were recorded (their events' occurred-at).
    warned_at_ms        bigint,
    breached_at_ms      bigint,
    -- Where the breach went (events.v1.EscalationRoute); 0 before a breach.
    route               smallint NOT NULL,
    -- The next instant at which a timer must fire (the warning, then the breach); null when
    -- nothing more fires (breached, or paused past its warning).
    next_fire_ms        bigint,
    referral_id         text NOT NULL,
    partner_id          text NOT NULL,
    -- Where the dispute arose, and who holds it.
    unit_code           text COLLATE "C" NOT NULL,
    committee_id        text NOT NULL,
    committee_unit_code text COLLATE "C" NOT NULL,
    tier                smallint NOT NULL,
    -- The calendar the deadline is counted in (deploy/calendars/), and its time zone.
    jurisdiction        text NOT NULL,
    time_zone           text NOT NULL,
    PRIMARY KEY (case_id, deadline_id)
);

-- The timers' scan: "what is due at or before now", soonest first.
CREATE INDEX deadlines_next_fire ON {schema}.deadlines (next_fire_ms, case_id, deadline_id)
    WHERE next_fire_ms IS NOT NULL;
-- The escalation board: warned and breached deadlines, oldest due time first (keyset paged).
CREATE INDEX deadlines_board ON {schema}.deadlines (due_at_ms, case_id, deadline_id) WHERE state > 1;

-- What the escalation board reads: the deadline with its case's category and state.
CREATE VIEW {schema}.deadline_items AS
SELECT d.*, c.category, c.state AS case_state
FROM {schema}.deadlines d
JOIN {schema}.cases c ON c.case_id = d.case_id;
