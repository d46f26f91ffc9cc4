"""Mix stage: mixture recipes with per-class upsampling -> `mix-<name>` conversation configs."""
