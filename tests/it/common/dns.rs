//! An in-process DNS server for a test: answers MX queries from a zone the test writes, so the
//! signup risk review's lookups never leave the machine. `NXDOMAIN` for names it does not know,
//! `SERVFAIL` for the names marked failing, an empty answer for domains without MX.

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::MX;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What the server says about one domain.
#[derive(Clone)]
pub enum Zone {
    /// These mail servers.
    Mx(Vec<&'static str>),
    /// The domain exists and has no MX record.
    NoMx,
    /// The server fails (SERVFAIL).
    Fail,
}

pub struct DnsServer {
    pub addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    pub async fn start(zones: &[(&str, Zone)]) -> Self {
        let zones: HashMap<String, Zone> = zones
            .iter()
            .map(|(d, z)| (format!("{}.", d.to_ascii_lowercase()), z.clone()))
            .collect();
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let counted = queries.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let mut answer =
                    Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
                answer.metadata.recursion_desired = query.metadata.recursion_desired;
                answer.metadata.recursion_available = true;
                answer.metadata.authoritative = true;
                for q in &query.queries {
                    answer.add_query(q.clone());
                    let name = q.name().to_ascii().to_ascii_lowercase();
                    match zones.get(&name) {
                        None => answer.metadata.response_code = ResponseCode::NXDomain,
                        Some(Zone::Fail) => answer.metadata.response_code = ResponseCode::ServFail,
                        Some(Zone::NoMx) => {}
                        Some(Zone::Mx(hosts)) if q.query_type() == RecordType::MX => {
                            for (i, host) in hosts.iter().enumerate() {
                                answer.add_answer(Record::from_rdata(
                                    q.name().clone(),
                                    300,
                                    RData::MX(MX::new(
                                        10 * (i as u16 + 1),
                                        Name::from_ascii(host).unwrap(),
                                    )),
                                ));
                            }
                        }
                        Some(Zone::Mx(_)) => {}
                    }
                }
                let _ = socket.send_to(&answer.to_vec().unwrap(), peer).await;
            }
        });
        Self {
            addr,
            queries,
            task,
        }
    }

    /// Queries answered so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
