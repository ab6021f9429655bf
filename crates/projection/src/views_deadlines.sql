CREATE OR REPLACE VIEW open_deadlines AS SELECT * FROM {schema}.deadlines;
CREATE OR REPLACE VIEW deadline_items AS SELECT * FROM {schema}.deadline_items;
