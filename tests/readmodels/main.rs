//! The read models users work from, end to end against real NATS and PostgreSQL: work queues,
//! linkage queues, statistics, live watch, rebuild, and the queue's query plan.

mod desk;
mod linkage;
mod plans;
mod rebuild;
mod statistics;
mod timeline;
mod watch;
mod work_queues;
