-- Fengqiao read models, first schema.
--
-- Read models live in generation schemas (rm_<model>_<n>) so that a rebuild can fill a fresh
-- generation beside the live one and swap the views below in one transaction.

CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection  text PRIMARY KEY,
    -- Generation schema the projector writes into and the views point at.
    schema_name text NOT NULL,
    -- Last stream sequence applied; written in the same transaction as the rows it changed.
    sequence    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Set when the projector met an event it could not apply; the read model is stopped.
    failed_at_sequence bigint,
    failure    text
);
