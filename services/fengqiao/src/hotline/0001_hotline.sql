-- The 12345 hotline bridge: its view of every work order and its callback outbox. Both are written
-- by the bridge's durable consumer of the case stream, one commit at a time, in stream order.

-- One row per 12345 work order: what the hotline (and the Open311 view) reads back.
CREATE TABLE hotline_orders (
    case_id        uuid PRIMARY KEY,
    order_number   text NOT NULL UNIQUE,
    category       text NOT NULL,
    unit_code      text NOT NULL,
    intake_channel text NOT NULL,
    -- fengqiao.events.v1.CaseState and ClosureOutcome numbers.
    state          smallint NOT NULL,
    closure        smallint NOT NULL DEFAULT 0,
    -- The latest thing the hotline was told, in words (progress note, return reason, final reply).
    status_notes   text NOT NULL DEFAULT '',
    committee_id   text NOT NULL DEFAULT '',
    requested_at   timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    -- The hotline's reply deadline, when it sent one.
    expected_at    timestamptz,
    -- Case version after the newest commit applied: the next commit must start there (an older one
    -- is a redelivery, a newer one waits for its predecessor).
    last_version   bigint NOT NULL
);

-- The outbox: one row per callback, from its creation to its delivery or dead letter.
CREATE TABLE hotline_deliveries (
    -- Derived from the event, so the same event always yields the same delivery id.
    delivery_id     uuid PRIMARY KEY,
    case_id         uuid NOT NULL REFERENCES hotline_orders (case_id),
    order_number    text NOT NULL,
    -- Where the event stands in the stream: the delivery order of one work order.
    stream_sequence bigint NOT NULL,
    event_index     integer NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('signed_for', 'progress', 'final_reply', 'return')),
    -- The JSON body posted, byte for byte (it is what the signature covers).
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    dead_at         timestamptz,
    UNIQUE (stream_sequence, event_index)
);

-- The head of each order's queue and the due deliveries.
CREATE INDEX hotline_deliveries_open ON hotline_deliveries (case_id, stream_sequence, event_index)
    WHERE status <> 'delivered';
CREATE INDEX hotline_deliveries_due ON hotline_deliveries (next_attempt_at) WHERE status = 'pending';
