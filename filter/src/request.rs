//! What the decision reads from a request: the [`RequestView`] it is given and the
//! [`HeaderSlot`]s it asks by. A leaf, so that every part of the per-request path (the rules'
//! index, the features, the mirror, the decision) can read a request without depending on the
//! plan that holds them; `decision` re-exports both.

/// Index of a request header in the plan's `header_names` (`RoutingPlan::header_names`). The
/// host fetches each header at most once per request, whatever number of rules read it.
pub type HeaderSlot = usize;

/// What the decision needs from a request.
pub trait RequestView {
    /// The value of the request header numbered `slot` in the plan's `header_names`, or
    /// `None` when the request lacks it. Called at most a few times per slot.
    fn header(&mut self, slot: HeaderSlot) -> Option<&[u8]>;
    /// The proxy's own region (`node.locality.region`), if it has one.
    fn proxy_region(&self) -> Option<&[u8]>;
    /// A uniformly random number, for requests without a sticky key.
    fn random(&mut self) -> u32;
    /// Calls `visit` with the (lower-case) name and the value of each request header, in
    /// order, and returns `true`; or returns `false` without calling it, and the decision asks
    /// for each header it may need with [`RequestView::header`] instead. Listing the headers
    /// lets a plan with many header rules look each header up among its rules once, rather
    /// than each of its rules' headers up in the request.
    fn for_each_header(&mut self, visit: &mut dyn FnMut(&[u8], &[u8])) -> bool {
        let _ = visit;
        false
    }
}
