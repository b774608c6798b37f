"""Background work: the job kinds (``runner``), the embedded queue (``embedded``), RQ (``rq``)
and the GPU worker (``worker``)."""
