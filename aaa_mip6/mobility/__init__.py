"""Mobile IPv6 signaling as RFC 6618 carries it: :mod:`.messages` is the Mobility Header
(Binding Update, Binding Acknowledgement, Binding Error, their options, the checksum);
:mod:`.payloads` wraps a Mobility Header in the PType 8 payload (Destination Options or
type 2 Routing header with the home address) and unwraps it."""
