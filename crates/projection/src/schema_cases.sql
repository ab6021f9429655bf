-- Tables of the `cases` read model beside the summary (schema_summary.sql), in the generation
-- schema named by {schema}.

-- Queue pages: a unit subtree (prefix match) in registration order, keyset-paged.
CREATE INDEX cases_owner_queue ON {schema}.cases (owner_unit text_pattern_ops, registered_at, case_id);

CREATE TABLE {schema}.case_events (
    case_id         uuid NOT NULL,
    case_version    bigint NOT NULL,
    stream_sequence bigint NOT NULL,
    event_type      text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    -- The whole protobuf envelope: the case file keeps every field of every event.
    envelope        bytea NOT NULL,
    PRIMARY KEY (case_id, case_version)
);
