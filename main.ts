console.log("dray: not wired yet");
