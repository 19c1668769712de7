//! Pull requests: the checks made when one arrives, the wait queue, and which waiting request
//! the next message goes to. Without priority groups that is the oldest request; with them
//! (ADR-42) it is the pinned client's, the first whose overflow threshold is met, or the one
//! of lowest `priority` (`docs/consumer-2.14-facts.md` §2, §4).

use bytes::Bytes;

use super::flow::{pending_headers, status};
use super::{Action, Consumer, Delivery, Waiting};
use crate::jetstream::consumer_config::{parse_pull_request, PriorityPolicy};
use crate::store::StreamStore;

impl Consumer {
    /// A pull request arrived on `$JS.API.CONSUMER.MSG.NEXT`.
    pub fn on_pull(
        &mut self,
        payload: &[u8],
        reply: Bytes,
        store: &StreamStore,
        now_ns: u64,
        out: &mut Vec<Action>,
    ) {
        self.last_activity_ns = now_ns;
        if !self.config.is_pull() {
            out.push(status(&reply, 409, "Consumer is push based", Vec::new()));
            return;
        }
        let req = match parse_pull_request(payload, &self.config) {
            Ok(req) => req,
            Err((code, text)) => {
                out.push(status(&reply, code, &text, Vec::new()));
                return;
            }
        };
        if let (Some(pin), Some(id)) = (&mut self.pin, &req.priority.pin_id) {
            if pin.id != id {
                out.push(status(&reply, 423, "Nats-Pin-Id mismatch", Vec::new()));
                return;
            }
            // The pinned client is still pulling: its pin lasts another priority_timeout.
            pin.renewed_ns = now_ns;
        }
        if self.config.max_waiting > 0 && self.waiting.len() as i64 >= self.config.max_waiting {
            // A request with heartbeats is dropped without a word, as nats-server does: its
            // client notices the missing heartbeats.
            if req.idle_heartbeat_ns == 0 {
                out.push(status(&reply, 409, "Exceeded MaxWaiting", Vec::new()));
            }
            return;
        }
        if req.no_wait && !self.waiting.is_empty() {
            let available = self.num_pending(store) + self.redeliver.len() as u64;
            let claimed: u64 = self.waiting.iter().map(|w| w.remaining).sum();
            if available > 0 && claimed >= available {
                out.push(status(&reply, 408, "Requests Pending", Vec::new()));
                return;
            }
        }
        self.enqueue(Waiting {
            reply,
            remaining: req.batch.max(1),
            bytes_left: (req.max_bytes > 0).then_some(req.max_bytes),
            expires_at_ns: (req.expires_ns > 0).then(|| now_ns + req.expires_ns),
            no_wait: req.no_wait,
            heartbeat_ns: req.idle_heartbeat_ns,
            last_sent_ns: now_ns,
            delivered: 0,
            priority: req.priority,
        });
        self.pump(store, now_ns, Delivery::Pull, out);
    }

    /// Queues a request: at the back, or under `prioritized` behind every request of the same
    /// or a more urgent priority.
    fn enqueue(&mut self, w: Waiting) {
        if self.config.priority_policy == PriorityPolicy::Prioritized {
            let at = self
                .waiting
                .iter()
                .position(|other| other.priority.priority > w.priority.priority)
                .unwrap_or(self.waiting.len());
            self.waiting.insert(at, w);
        } else {
            self.waiting.push_back(w);
        }
    }

    /// The waiting request the next message goes to, if any may have one now.
    fn next_request(&mut self, store: &StreamStore) -> Option<usize> {
        if self.waiting.is_empty() {
            return None;
        }
        match self.config.priority_policy {
            PriorityPolicy::None | PriorityPolicy::Prioritized => Some(0),
            PriorityPolicy::Overflow => {
                // The message about to go counts as pending, as in nats-server.
                let pending = self.num_pending(store);
                let ack_pending = self.pending.len() as u64;
                self.waiting.iter().position(|w| {
                    let p = &w.priority;
                    (p.min_pending == 0 && p.min_ack_pending == 0)
                        || (p.min_pending > 0 && pending >= p.min_pending)
                        || (p.min_ack_pending > 0 && ack_pending >= p.min_ack_pending)
                })
            }
            PriorityPolicy::PinnedClient => match &self.pin {
                Some(pin) => self
                    .waiting
                    .iter()
                    .position(|w| w.priority.pin_id.as_ref() == Some(&pin.id)),
                // The oldest request: pinned if it holds no id, refused if its id is stale.
                None => Some(0),
            },
        }
    }

    pub(super) fn pump_pull(&mut self, store: &StreamStore, now_ns: u64, out: &mut Vec<Action>) {
        if !self.is_paused(now_ns) {
            self.serve_requests(store, now_ns, out);
        }
        // no_wait requests that could not be filled end now, unless nothing was sent and the
        // request has an expiry: nats-server then keeps it as a one-shot that ends with the
        // first message or with `408 Request Timeout` (consumer.go, processNextMsgRequest).
        let mut kept = std::collections::VecDeque::with_capacity(self.waiting.len());
        for w in self.waiting.drain(..) {
            if w.no_wait && (w.delivered > 0 || w.expires_at_ns.is_none()) {
                out.push(status(&w.reply, 404, "No Messages", Vec::new()));
            } else {
                kept.push_back(w);
            }
        }
        self.waiting = kept;
    }

    fn serve_requests(&mut self, store: &StreamStore, now_ns: u64, out: &mut Vec<Action>) {
        let pinned = self.config.priority_policy == PriorityPolicy::PinnedClient;
        while let Some(i) = self.next_request(store) {
            let Some((msg, deliveries)) = self.next_message(store) else {
                break;
            };
            if self.held(&msg, deliveries, now_ns) {
                break;
            }
            if pinned && self.pin.is_none() && self.waiting[i].priority.pin_id.is_some() {
                // Its pin was taken away (unpinned, or timed out) while it waited.
                self.unread(&msg, deliveries);
                if let Some(w) = self.waiting.remove(i) {
                    out.push(status(
                        &w.reply,
                        423,
                        "Nats-Wrong-Pin-Id",
                        pending_headers(&w),
                    ));
                }
                continue;
            }
            let size = (msg.subject.len() + msg.headers.len() + msg.payload.len() + 64) as u64;
            if self.waiting[i].bytes_left.is_some_and(|left| size > left) {
                // Put the message back where it came from and end the request.
                self.unread(&msg, deliveries);
                if let Some(w) = self.waiting.remove(i) {
                    out.push(status(
                        &w.reply,
                        409,
                        "Message Size Exceeds MaxBytes",
                        pending_headers(&w),
                    ));
                }
                continue;
            }
            let pin_id = match (pinned, &self.pin) {
                (false, _) => None,
                (true, Some(pin)) => Some(pin.id.clone()),
                (true, None) => {
                    let id = self.pin_new_client(now_ns, out);
                    self.waiting[i].priority.pin_id = Some(id.clone());
                    Some(id)
                }
            };
            let ack_subject = self.record_delivery(&msg, deliveries, now_ns, store, out);
            self.paced_send(&msg, now_ns);
            let w = &mut self.waiting[i];
            out.push(Action::Deliver {
                to: w.reply.clone(),
                msg,
                ack_subject,
                headers_only: self.config.headers_only,
                pin_id,
            });
            w.remaining -= 1;
            w.delivered += 1;
            w.last_sent_ns = now_ns;
            if let Some(left) = &mut w.bytes_left {
                *left -= size.min(*left);
            }
            if w.remaining == 0 {
                let done = self.waiting.remove(i);
                if let Some(w) = done.filter(|w| w.bytes_left.is_some()) {
                    out.push(status(
                        &w.reply,
                        409,
                        "Batch Completed",
                        pending_headers(&w),
                    ));
                }
            } else if self.config.priority_policy == PriorityPolicy::Prioritized {
                // Requests of one priority take turns, a message each.
                if let Some(w) = self.waiting.remove(i) {
                    self.enqueue(w);
                }
            }
        }
    }
}
