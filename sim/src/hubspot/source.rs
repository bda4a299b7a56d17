//! Who made a change, as HubSpot names it in webhooks and property history.

/// Who made the change: a simulated person in HubSpot's UI, or an API client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Person,
    Integration,
}

/// A made-up HubSpot user that the simulated people act as.
pub(crate) const UI_USER_ID: u64 = 9_100_001;

impl Source {
    /// How HubSpot names the source of a change, in webhooks (`changeSource`,
    /// `sourceId`) and in property history (`sourceType`, `sourceId`): `CRM_UI` and
    /// `userId:<id>` for a person, `INTEGRATION` and the app's id for an app.
    pub(crate) fn names(self, app_id: u64) -> (&'static str, String) {
        match self {
            Source::Person => ("CRM_UI", format!("userId:{UI_USER_ID}")),
            Source::Integration => ("INTEGRATION", app_id.to_string()),
        }
    }
}
