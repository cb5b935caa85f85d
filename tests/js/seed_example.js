const WebSocket = require('ws');

// Get JWT token from login
const token = 'your_jwt_token_here';

// Connect to WebSocket
const ws = new WebSocket(`ws://localhost:3000/ws?token=${token}`);

ws.on('open', () => {
  console.log('Connected to WebSocket');
  
  // Send a session message
  ws.send(JSON.stringify({
    type: 'session_message',
    session_id: 'session-uuid',
    message_text: 'I feel anxious today'
  }));
});

ws.on('message', (data) => {
  const message = JSON.parse(data.toString());
  
  switch (message.type) {
    case 'connection':
      console.log('Connection confirmed');
      break;
    case 'assistant_message_chunk':
      // Stream the response
      process.stdout.write(message.chunk);
      break;
    case 'assistant_message_complete':
      console.log('\nComplete message:', message.message.text);
      break;
    case 'safety_escalation':
      console.log('⚠️ Safety escalation:', message.emergency_resources);
      break;
    case 'error':
      console.error('Error:', message.message);
      break;
  }
});

ws.on('error', (error) => {
  console.error('WebSocket error:', error);
});

ws.on('close', () => {
  console.log('WebSocket closed');
});
