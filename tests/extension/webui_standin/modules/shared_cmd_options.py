from __future__ import annotations

from modules import cmd_args

parser = cmd_args.parser
cmd_opts, _ = parser.parse_known_args()
