//! The room directory: which rooms are live over every node, who is in them, since when a
//! customer waits, and the page the customer is on (`GET /v1/rooms`, the demo console's waiting
//! list). Backends implement [`super::Directory`] from what they already keep (presence, the page
//! timeline) plus a few timestamps; [`LiveRoom::build`] turns that into a listing entry, the same
//! way for both.

use assist_relay_proto::{Member, PageKind, PageRecord, Role};
use serde::Serialize;

/// Where a live room stands, from who is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomState {
    /// A customer is present and no agent.
    Waiting,
    /// A customer and at least one agent are present.
    Assisted,
    /// Only agents are present (the customer left or has not come yet).
    NoCustomer,
}

impl std::str::FromStr for RoomState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "waiting" => Ok(RoomState::Waiting),
            "assisted" => Ok(RoomState::Assisted),
            "no_customer" => Ok(RoomState::NoCustomer),
            _ => Err(format!(
                "unknown state {s:?} (expected waiting, assisted or no_customer)"
            )),
        }
    }
}

/// One participant present in a live room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveMember {
    /// Participant id (the token's `sub`).
    pub sub: String,
    /// Its role.
    pub role: Role,
    /// When its first connection still open entered, ms since the Unix epoch.
    pub joined_ms: u64,
}

/// The page a live room's customer is on (the last entry of its page timeline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LivePage {
    /// The page URL, or `native://<page_id>` for a native screen.
    pub url: String,
    /// Web page or native screen.
    pub kind: PageKind,
    /// Offset of the page's first event in the room log.
    pub offset: u64,
    /// The page title, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// One entry of the live-room listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveRoom {
    /// Room id.
    pub room: String,
    /// Waiting, assisted, or no customer.
    pub state: RoomState,
    /// When the room's first member entered, ms since the Unix epoch.
    pub opened_ms: u64,
    /// While waiting: since when (the later of the customer's arrival and the last agent's
    /// departure), ms since the Unix epoch; otherwise null.
    pub waiting_since_ms: Option<u64>,
    /// Everyone present over every node, by arrival.
    pub members: Vec<LiveMember>,
    /// The customer's current page, if any was recorded.
    pub page: Option<LivePage>,
}

/// What a backend knows of a live room, before [`LiveRoom::build`] derives the rest.
#[derive(Debug, Clone, Default)]
pub struct RoomSeen {
    /// When the room's first member entered (ms); 0 if unknown.
    pub opened_ms: u64,
    /// Members present, each with when it entered (ms; 0 if unknown).
    pub members: Vec<(Member, u64)>,
    /// When an agent was last present (ms), if ever.
    pub agent_seen_ms: Option<u64>,
    /// The last page of the timeline.
    pub page: Option<PageRecord>,
}

impl LiveRoom {
    /// The listing entry of `room`; `None` when nobody is present.
    pub fn build(room: &str, seen: RoomSeen) -> Option<LiveRoom> {
        if seen.members.is_empty() {
            return None;
        }
        let mut members: Vec<LiveMember> = seen
            .members
            .into_iter()
            .map(|(m, joined_ms)| LiveMember {
                sub: m.id,
                role: m.role,
                joined_ms,
            })
            .collect();
        members.sort_by(|a, b| (a.joined_ms, &a.sub).cmp(&(b.joined_ms, &b.sub)));
        let customer_since = members
            .iter()
            .filter(|m| m.role == Role::Customer)
            .map(|m| m.joined_ms)
            .min();
        let agents = members.iter().any(|m| m.role == Role::Agent);
        let (state, waiting_since_ms) = match (customer_since, agents) {
            (None, _) => (RoomState::NoCustomer, None),
            (Some(_), true) => (RoomState::Assisted, None),
            (Some(since), false) => (
                RoomState::Waiting,
                Some(since.max(seen.agent_seen_ms.unwrap_or(0))),
            ),
        };
        let opened_ms = if seen.opened_ms == 0 {
            members.first().map(|m| m.joined_ms).unwrap_or(0)
        } else {
            seen.opened_ms
        };
        Some(LiveRoom {
            room: room.to_owned(),
            state,
            opened_ms,
            waiting_since_ms,
            members,
            page: seen.page.map(|p| LivePage {
                url: p.url,
                kind: p.kind,
                offset: p.offset,
                title: p.title,
            }),
        })
    }
}

/// A page of the directory, as a backend reads it.
#[derive(Debug, Clone, Default)]
pub struct DirectoryPage {
    /// Live rooms, by room id.
    pub rooms: Vec<LiveRoom>,
    /// The last room id looked at, when more may follow (the next read starts after it).
    pub more_after: Option<String>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    crate::hub::now_us() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, role: Role) -> Member {
        Member {
            id: id.into(),
            role,
        }
    }

    #[test]
    fn waiting_since_is_the_later_of_the_customer_arrival_and_the_last_agent_leaving() {
        let seen = RoomSeen {
            opened_ms: 100,
            members: vec![(m("bob", Role::Customer), 200)],
            agent_seen_ms: Some(500),
            page: None,
        };
        let r = LiveRoom::build("r", seen.clone()).expect("live");
        assert_eq!(r.state, RoomState::Waiting);
        assert_eq!(r.waiting_since_ms, Some(500));
        let r = LiveRoom::build(
            "r",
            RoomSeen {
                agent_seen_ms: None,
                ..seen
            },
        )
        .expect("live");
        assert_eq!(r.waiting_since_ms, Some(200));
    }

    #[test]
    fn state_follows_who_is_present() {
        let both = RoomSeen {
            members: vec![(m("a", Role::Agent), 2), (m("c", Role::Customer), 1)],
            ..Default::default()
        };
        let r = LiveRoom::build("r", both).expect("live");
        assert_eq!(r.state, RoomState::Assisted);
        assert_eq!(r.waiting_since_ms, None);
        assert_eq!(r.members[0].sub, "c", "by arrival");
        assert_eq!(r.opened_ms, 1, "unknown opening: the first arrival");
        let agents = RoomSeen {
            members: vec![(m("a", Role::Agent), 2)],
            ..Default::default()
        };
        assert_eq!(
            LiveRoom::build("r", agents).expect("live").state,
            RoomState::NoCustomer
        );
        assert!(LiveRoom::build("r", RoomSeen::default()).is_none());
    }
}
