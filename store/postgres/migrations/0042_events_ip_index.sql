-- Erasing a person's addresses from the events (ForgetEventIPs) read
-- every event of the tenant through events_tenant and tested its JSON:
-- an event or more per charge, for the few events whose object holds an
-- address (sign-ins) and names the person. This index holds those events
-- alone, by tenant and the user they name; its predicate is the
-- statement's own, so a charge's events cost it nothing.
CREATE INDEX events_ip_user ON events (tenant_id, (data->'object'->>'user'))
    WHERE data->'object' ? 'ip';
