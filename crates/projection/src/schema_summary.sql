-- The case summary table shared by the read models that keep one row per case (src/summary.rs),
-- created in a generation schema named by {schema}.
CREATE SCHEMA {schema};

CREATE TABLE {schema}.cases (
    case_id             uuid PRIMARY KEY,
    state               smallint NOT NULL,
    channel             smallint NOT NULL,
    external_ref        text NOT NULL,
    category            text NOT NULL,
    description         text NOT NULL,
    unit_code           text NOT NULL,
    address             text NOT NULL,
    urgency             smallint NOT NULL,
    risk_signals        jsonb NOT NULL,
    parties             jsonb NOT NULL,
    tier                smallint NOT NULL,
    committee_id        text NOT NULL,
    committee_unit_code text NOT NULL,
    -- The unit whose queue shows the case: the owning committee's unit, else where it arose.
    owner_unit          text NOT NULL,
    risk_level          smallint NOT NULL,
    version             bigint NOT NULL,
    registered_at       timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    last_sequence       bigint NOT NULL
);
