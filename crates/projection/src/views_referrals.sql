CREATE OR REPLACE VIEW linkage_referral_items AS SELECT * FROM {schema}.referral_items;
