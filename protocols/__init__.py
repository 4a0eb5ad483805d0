"""Protocol front-ends (SCEP, EST, ACME, ...): each turns its wire format into
:class:`gateway.model.EnrollmentRequest` and renders outcomes in its own terms."""
