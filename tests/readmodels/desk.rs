//! A clerk's desk for the read-model tests: commands through the public API with fresh
//! idempotency keys, remembering the newest stream sequence for read-your-writes.

use fengqiao_tests::*;

/// What a partner answers to the case's first referral (R1).
pub enum Answer {
    Accept,
    Decline(&'static str),
    Return(&'static str),
    Conclude(events::ReferralOutcome),
}

/// Tokens for the district's staff and the newest sequence committed through them.
pub struct Desk {
    pub app: TestApp,
    /// Dispatcher of the district (registers and dispatches anywhere in it).
    pub dispatcher: String,
    /// A committee lead acting for the district (signs for, assigns, closes).
    pub lead: String,
    pub last: u64,
}

fn key() -> Option<rpc::CommandMeta> {
    meta(&uuid::Uuid::new_v4().to_string())
}

impl Desk {
    pub async fn open() -> Desk {
        Self::open_with(|_| {}).await
    }

    /// A desk on a service whose settings `edit` changed.
    pub async fn open_with(edit: impl FnOnce(&mut fengqiao::settings::Settings)) -> Desk {
        let app = TestApp::spawn_with(edit).await;
        let dispatcher = app.token("dispatcher", DISTRICT);
        let lead = app.token("committee_lead", DISTRICT);
        Desk { app, dispatcher, lead, last: 0 }
    }

    fn took(&mut self, r: rpc::CommandResult) -> rpc::CommandResult {
        self.last = self.last.max(r.stream_sequence);
        r
    }

    /// Registers `r` (with a fresh idempotency key) and returns the case id.
    pub async fn register(&mut self, mut r: rpc::RegisterCaseRequest) -> String {
        r.meta = key();
        let done = self.app.intake().await.register_case(req(&self.dispatcher, r)).await.expect("register");
        self.took(done.into_inner()).case_id
    }

    /// Registers a 12345 order `n` in `unit` with `category`.
    pub async fn order(&mut self, n: &str, unit: &str, category: &str) -> String {
        self.register(rpc::RegisterCaseRequest {
            unit_code: unit.to_owned(),
            category: category.to_owned(),
            ..hotline_order(n)
        })
        .await
    }

    pub async fn dispatch(
        &mut self,
        case: &str,
        committee: &str,
        unit: &str,
        tier: events::Tier,
    ) -> rpc::CommandResult {
        let r = rpc::DispatchCaseRequest {
            meta: key(),
            case_id: case.to_owned(),
            tier: tier as i32,
            committee_id: committee.to_owned(),
            committee_unit_code: unit.to_owned(),
            ..Default::default()
        };
        let done = self.app.work().await.dispatch_case(req(&self.dispatcher, r)).await.expect("dispatch");
        self.took(done.into_inner())
    }

    pub async fn accept(&mut self, case: &str) -> rpc::CommandResult {
        let r = rpc::AcceptCaseRequest { meta: key(), case_id: case.to_owned() };
        let done = self.app.work().await.accept_case(req(&self.lead, r)).await.expect("accept");
        self.took(done.into_inner())
    }

    pub async fn assign(&mut self, case: &str, mediators: &[&str]) -> rpc::CommandResult {
        let r = rpc::AssignMediatorsRequest {
            meta: key(),
            case_id: case.to_owned(),
            mediator_ids: mediators.iter().map(|m| (*m).to_owned()).collect(),
        };
        let done = self.app.work().await.assign_mediators(req(&self.lead, r)).await.expect("assign");
        self.took(done.into_inner())
    }

    pub async fn close(&mut self, case: &str, outcome: events::ClosureOutcome) -> rpc::CommandResult {
        let r = rpc::CloseCaseRequest {
            meta: key(),
            case_id: case.to_owned(),
            outcome: outcome as i32,
            summary: "双方达成一致，纠纷化解。".to_owned(),
        };
        let done = self.app.work().await.close_case(req(&self.lead, r)).await.expect("close");
        self.took(done.into_inner())
    }

    pub async fn escalate(&mut self, case: &str, committee: &str, unit: &str) -> rpc::CommandResult {
        let r = rpc::EscalateCaseRequest {
            meta: key(),
            case_id: case.to_owned(),
            committee_id: committee.to_owned(),
            committee_unit_code: unit.to_owned(),
            reason: "社区调解未果，提交街道。".to_owned(),
        };
        let done = self.app.work().await.escalate_case(req(&self.lead, r)).await.expect("escalate");
        self.took(done.into_inner())
    }

    pub async fn return_case(&mut self, case: &str) -> rpc::CommandResult {
        let r =
            rpc::ReturnCaseRequest { meta: key(), case_id: case.to_owned(), reason: "不属本委管辖".to_owned() };
        let done = self.app.work().await.return_case(req(&self.lead, r)).await.expect("return");
        self.took(done.into_inner())
    }

    pub async fn refer(&mut self, case: &str, kind: events::PartnerKind, partner: &str) -> rpc::CommandResult {
        let r = rpc::ReferCaseRequest {
            meta: key(),
            case_id: case.to_owned(),
            partner_kind: kind as i32,
            partner_id: partner.to_owned(),
            partner_name: format!("{partner} 名称"),
            reason: "需要联动处置".to_owned(),
        };
        let done = self.app.work().await.refer_case(req(&self.lead, r)).await.expect("refer");
        self.took(done.into_inner())
    }

    /// A partner agent's answer on referral `referral` of `case`.
    pub async fn partner(&mut self, token: &str, case: &str, answer: Answer) -> rpc::CommandResult {
        let mut linkage = self.app.linkage().await;
        let (case_id, referral_id) = (case.to_owned(), "R1".to_owned());
        let done = match answer {
            Answer::Accept => {
                linkage
                    .accept_referral(req(token, rpc::AcceptReferralRequest { meta: key(), case_id, referral_id }))
                    .await
            }
            Answer::Decline(reason) => {
                let r = rpc::DeclineReferralRequest { meta: key(), case_id, referral_id, reason: reason.to_owned() };
                linkage.decline_referral(req(token, r)).await
            }
            Answer::Return(reason) => {
                let r = rpc::ReturnReferralRequest { meta: key(), case_id, referral_id, reason: reason.to_owned() };
                linkage.return_referral(req(token, r)).await
            }
            Answer::Conclude(outcome) => {
                let r = rpc::ConcludeReferralRequest {
                    meta: key(),
                    case_id,
                    referral_id,
                    outcome: outcome as i32,
                    summary: "经诉前调解达成协议".to_owned(),
                };
                linkage.conclude_referral(req(token, r)).await
            }
        };
        self.took(done.expect("partner answer").into_inner())
    }

    pub async fn fail(&mut self, case: &str) -> rpc::CommandResult {
        let r = rpc::RecordMediationFailureRequest {
            meta: key(),
            case_id: case.to_owned(),
            reason: "双方分歧过大".to_owned(),
            advice: events::FailureAdvice::Litigation as i32,
            ..Default::default()
        };
        let done = self.app.work().await.record_mediation_failure(req(&self.lead, r)).await.expect("fail");
        self.took(done.into_inner())
    }

    pub async fn follow_up(&mut self, case: &str, satisfaction: events::Satisfaction) -> rpc::CommandResult {
        let r = rpc::RecordFollowUpRequest {
            meta: key(),
            case_id: case.to_owned(),
            method: events::FollowUpMethod::Phone as i32,
            satisfaction: satisfaction as i32,
            note: String::new(),
        };
        let done = self.app.follow_up().await.record_follow_up(req(&self.lead, r)).await.expect("follow up");
        self.took(done.into_inner())
    }

    pub async fn withdraw(&mut self, case: &str) -> rpc::CommandResult {
        let r =
            rpc::WithdrawCaseRequest { meta: key(), case_id: case.to_owned(), reason: "申请人撤回".to_owned() };
        let done = self.app.work().await.withdraw_case(req(&self.lead, r)).await.expect("withdraw");
        self.took(done.into_inner())
    }

    pub async fn merge(&mut self, case: &str, into: &str) -> rpc::CommandResult {
        let r = rpc::MergeCaseRequest {
            meta: key(),
            case_id: case.to_owned(),
            into_case_id: into.to_owned(),
            reason: "同一纠纷重复登记".to_owned(),
        };
        let done = self.app.work().await.merge_case(req(&self.lead, r)).await.expect("merge");
        self.took(done.into_inner())
    }

    pub async fn work_queues(
        &self,
    ) -> rpc::work_queue_service_client::WorkQueueServiceClient<tonic::transport::Channel> {
        rpc::work_queue_service_client::WorkQueueServiceClient::new(self.app.channel().await)
    }
}
