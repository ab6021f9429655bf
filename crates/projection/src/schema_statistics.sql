-- Tables of the `statistics` read model, created in a generation schema named by {schema}.
-- Definitions: docs/read-models.md, "Statistics", and src/statistics.rs.
CREATE SCHEMA {schema};

-- What each case contributes to the statistics, folded event by event.
CREATE TABLE {schema}.case_facts (
    case_id          uuid PRIMARY KEY,
    version          bigint NOT NULL,
    -- Where the dispute arose (CaseRegistered.unit_code): the unit it is counted under.
    unit_code        text NOT NULL,
    -- The current category (a dispatch may re-categorise).
    category         text NOT NULL,
    channel          smallint NOT NULL,
    -- Local date of registration in the jurisdiction's calendar: the period it is counted in.
    day              text NOT NULL,
    merged           boolean NOT NULL,
    tier             smallint NOT NULL,
    -- Outcome of the closure in force (0 while open or after reopening), and the tier it closed at.
    closure          smallint NOT NULL,
    closed_tier      smallint NOT NULL,
    dispatched       boolean NOT NULL,
    -- Sign-for deadline of the first dispatch, and when the case was first signed for (ms).
    sign_for_due_ms  bigint,
    signed_at_ms     bigint,
    -- Satisfaction of the latest follow-up (0: none yet).
    satisfaction     smallint NOT NULL,
    -- The case's deadline clocks (fengqiao_domain::deadlines::Clocks), for the sign-for deadline.
    clocks           jsonb NOT NULL
);

-- Sums of the case contributions per unit, local day, category and channel. Maintained by
-- deltas: each change of a case subtracts its old contribution and adds its new one, so the sums
-- are always exactly those of the case facts; rows whose sums fall to zero are removed.
CREATE TABLE {schema}.daily (
    unit_code              text COLLATE "C" NOT NULL,
    day                    date NOT NULL,
    category               text NOT NULL,
    channel                smallint NOT NULL,
    received               bigint NOT NULL,
    handled                bigint NOT NULL,
    resolved               bigint NOT NULL,
    resolved_at_grassroots bigint NOT NULL,
    dispatched             bigint NOT NULL,
    signed_in_time         bigint NOT NULL,
    closed                 bigint NOT NULL,
    followed_up            bigint NOT NULL,
    satisfied              bigint NOT NULL,
    basically_satisfied    bigint NOT NULL,
    dissatisfied           bigint NOT NULL,
    PRIMARY KEY (unit_code, day, category, channel)
);
