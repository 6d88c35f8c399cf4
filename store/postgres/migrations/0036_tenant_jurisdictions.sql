-- The platform operator's bound of the countries a tenant may operate in:
-- the tenant's own allowed_countries may name only these, and the charge
-- policy enforces the tenant's list within the bound (the bound itself
-- while the tenant's list is empty). Empty: no bound.
ALTER TABLE tenant_countries ADD COLUMN operator_countries text[] NOT NULL DEFAULT '{}';
