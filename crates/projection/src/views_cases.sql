CREATE OR REPLACE VIEW cases AS SELECT * FROM {schema}.cases;
CREATE OR REPLACE VIEW case_events AS SELECT * FROM {schema}.case_events;
