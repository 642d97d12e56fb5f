"""Sales service: Customers, pipeline, quotes and approvals, contracts, orders, receivables, renewals."""
