"""The fleet's queue plumbing: the message contract, SQS access and the transactional outbox."""
