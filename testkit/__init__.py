"""What proves ec2-inference works, shared by the tests, the benchmarks and the local demo.

tools/ holds what a user runs (build, docs, the Terraform runner, the template lint, the
demo); this package holds what proves it: the stand-in AWS provider, the fake vLLM, the
local services (registry, moto, pebble, NGINX), plan inventories, the one renderer of the
instance's files, and the boot harness. See docs/DEVELOPMENT.md for the layout.
"""
