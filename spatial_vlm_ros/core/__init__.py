"""ROS-free core: camera geometry, depth, lifting, gravity, scene memory, relations, quantities, questions.

Frames used throughout (all lengths in metres):
- camera optical frame: x right, y down, z forward (REP 103 ``*_optical_frame``);
- gravity frame: z up (against gravity), x = camera x projected on the horizontal plane (right),
  y = z cross x (forward, horizontal), origin at the camera centre.
"""
