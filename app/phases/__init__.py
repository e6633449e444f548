"""The four phases. Each is a package with one entry point, `run(job_id, ctx) -> PhaseResult`.

1 analyze  - quality, scene, room labels and clusters, heroes, motion plan per clip (CPU)
2 render   - one clip per planned photo, best renderer available, validated (GPU in the fleet)
3 timeline - beat grid, story order, beats per clip, versioned timeline (CPU)
4 assemble - one ffmpeg graph: transitions on beats, music, loudness, MP4 + poster (CPU)
"""
