"""modules/route53 never takes over an existing record unless asked to (allow_overwrite
would UPSERT it and delete it on destroy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def test_an_existing_record_is_only_overwritten_when_asked(plan_summary: Any) -> None:
    var_file = [str(HERE / "zone_id.tfvars")]
    default = plan_summary("modules/route53", tf_var_files=var_file)
    assert default.values["aws_route53_record.this"]["allow_overwrite"] is False
    opted = plan_summary("modules/route53", tf_var_files=var_file, allow_overwrite=True)
    assert opted.values["aws_route53_record.this"]["allow_overwrite"] is True
