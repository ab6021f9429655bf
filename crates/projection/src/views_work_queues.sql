CREATE OR REPLACE VIEW work_queue_items AS SELECT * FROM {schema}.queue_items;
