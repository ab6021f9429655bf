//! Fengqiao, the service: the gRPC edge, the command path, the projector and the 12345 hotline
//! bridge, wired together.
//! `main` and the tests start it the same way: [`app::Application::build`] → `local_addr` →
//! `run(shutdown)`.

pub mod app;
pub mod auth;
pub mod authz;
pub mod commands;
pub mod grpc;
pub mod hotline;
pub mod ops;
pub mod privacy;
pub mod settings;
pub mod state;
pub mod telemetry;
pub mod timers;
