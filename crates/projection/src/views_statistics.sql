CREATE OR REPLACE VIEW statistics_daily AS SELECT * FROM {schema}.daily;
