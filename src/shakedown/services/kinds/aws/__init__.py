"""The ``aws`` kind: the AWS emulator (``shakedown.awsemu``) as a service (``service``), with
the compute it runs natively — Lambda workers, EC2 instances, HTTP APIs — as fault targets,
logs and history (``_compute``)."""

from .service import AwsService

__all__ = ["AwsService"]
