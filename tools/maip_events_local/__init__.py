"""The Docker-less local stack: embedded DynamoDB (moto), an API Gateway emulator and a stream poller,
all built from template.yaml and running the real Lambda handlers."""
