"""What a channel writes of a message: one JSON object, the same as the standard encoder's."""

import dataclasses
import json

from services.campaigns.channels import Outgoing


def test_a_message_line_is_the_json_of_its_fields_whatever_the_text_holds():
    message = Outgoing("c1|0a|birthday:2027-02-25", "c1", "0a", "birthday:2027-02-25", "li@example.com",
                       'Care "quoted"', '张伟，生日快乐！\n退订 \\ https://x/?a=1&b="2"\t\x01\u2028')
    line = message.to_json()
    assert line == json.dumps(dataclasses.asdict(message), ensure_ascii=False)
    assert "\n" not in line and json.loads(line)["text"] == message.text
