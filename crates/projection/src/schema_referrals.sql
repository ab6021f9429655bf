-- Tables of the `referrals` read model (six-way linkage queues) beside the summary
-- (schema_summary.sql), in the generation schema named by {schema}.

-- Each case's deadline clocks (fengqiao_domain::deadlines::Clocks): the acceptance deadlines.
CREATE TABLE {schema}.case_clocks (
    case_id uuid PRIMARY KEY,
    clocks  jsonb NOT NULL
);

-- One row per referral (移交) of a case to a partner institution.
CREATE TABLE {schema}.referrals (
    case_id           uuid NOT NULL,
    referral_id       text NOT NULL,
    partner_kind      smallint NOT NULL,
    partner_id        text COLLATE "C" NOT NULL,
    partner_name      text NOT NULL,
    reason            text NOT NULL,
    -- 1 pending, 2 accepted, 3 declined, 4 returned, 5 concluded (api ReferralStatus).
    status            smallint NOT NULL,
    made_at           timestamptz NOT NULL,
    -- Who referred it, for which unit.
    made_by           text NOT NULL,
    made_unit         text NOT NULL,
    -- When the partner must accept or decline (ms), while pending; null when no policy applies.
    acceptance_due_ms bigint,
    -- The partner's latest answer: when, and the reason (decline, return) or outcome (conclusion).
    answered_at       timestamptz,
    answer_reason     text NOT NULL,
    outcome           smallint NOT NULL,
    outcome_summary   text NOT NULL,
    -- Queue order, ascending: the acceptance deadline while pending (9223372036854775807 when
    -- none), the acceptance time while accepted, minus the answer time once closed (newest first).
    sort_key          bigint NOT NULL,
    PRIMARY KEY (case_id, referral_id)
);

CREATE INDEX referrals_by_partner ON {schema}.referrals (partner_id, status, sort_key, case_id, referral_id);
CREATE INDEX referrals_by_kind ON {schema}.referrals (partner_kind, status, sort_key, case_id, referral_id);

-- What a linkage queue page reads: the case summary first (in `query::SUMMARY` order), then the
-- referral. One view, so a page locks one relation of this model.
CREATE VIEW {schema}.referral_items AS
SELECT c.case_id, c.state, c.channel, c.external_ref, c.category, c.description, c.unit_code, c.address, c.urgency,
       c.risk_signals, c.parties, c.tier, c.committee_id, c.committee_unit_code, c.owner_unit, c.risk_level,
       c.version, c.registered_at, c.updated_at,
       r.referral_id, r.partner_kind, r.partner_id, r.partner_name, r.reason, r.status, r.made_at, r.made_by,
       r.made_unit, r.acceptance_due_ms, r.answered_at, r.answer_reason, r.outcome, r.outcome_summary, r.sort_key
FROM {schema}.referrals r
JOIN {schema}.cases c ON c.case_id = r.case_id;
